// Rescaling: inputs * scale + offset (e.g. scale 1/255 for 8-bit images).
#pragma once

#include "layers/layer.h"

namespace strata {

struct RescalingOptions {
  float offset = 0.f;
  std::string name;
  bool trainable = true;
};

class Rescaling : public LayerBase<Rescaling> {
 public:
  explicit Rescaling(float scale, RescalingOptions options = {});
  std::string class_name() const override { return "Rescaling"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float scale_, offset_;
};

}  // namespace strata
