// Rescaling: inputs * scale + offset (e.g. scale 1/255 for 8-bit images). scale and offset may be arrays
// that broadcast against the inputs (one value per channel, as EfficientNet's preprocessing).
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
  // One scale per channel (the last axis).
  explicit Rescaling(std::vector<float> channel_scales, RescalingOptions options = {});
  Rescaling(config::NumberArray scale, config::NumberArray offset, LayerOptions options = {});
  std::string class_name() const override { return "Rescaling"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  config::NumberArray scale_, offset_;
  VariablePtr scale_values_, offset_values_;  // the arrays as graph operands; not weights (Keras keeps them in the config)
};

}  // namespace strata
