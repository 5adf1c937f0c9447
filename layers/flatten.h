// Flatten: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...).
#pragma once

#include "layers/layer.h"

namespace strata {

class Flatten : public LayerBase<Flatten> {
 public:
  explicit Flatten(LayerOptions options = {});
  std::string class_name() const override { return "Flatten"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
};

}  // namespace strata
