// RMSNormalization as Keras 3: x * rsqrt(mean(x^2 over `axis`) + epsilon) * scale, with one learned scale
// per position of the normalised axes (the trailing channel axis by default).
#pragma once

#include "layers/layer.h"

namespace strata {

class RMSNormalization : public LayerBase<RMSNormalization> {
 public:
  explicit RMSNormalization(std::vector<int> axis = {-1}, float epsilon = 1e-6f, LayerOptions options = {});
  std::string class_name() const override { return "RMSNormalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  std::vector<int> axis_;
  float epsilon_;
  std::vector<int> resolved_;                // the axes, non-negative and sorted
  std::vector<std::int64_t> scale_shape_;    // the scale broadcast over the other axes
  VariablePtr scale_;
};

}  // namespace strata
