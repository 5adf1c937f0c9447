// Reshape: (batch, ...) -> (batch, target_shape...); one target dimension may be -1 (inferred).
#pragma once

#include "layers/layer.h"

namespace strata {

class Reshape : public LayerBase<Reshape> {
 public:
  explicit Reshape(Shape target_shape, LayerOptions options = {});
  std::string class_name() const override { return "Reshape"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  Shape target_;
};

}  // namespace strata
