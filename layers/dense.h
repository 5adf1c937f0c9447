// Dense: activation(inputs @ kernel + bias), kernel (in, units) and bias (units,) as Keras stores them.
#pragma once

#include "layers/layer.h"

namespace strata {

struct DenseOptions {
  std::string activation;  // empty: linear
  bool use_bias = true;
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

class Dense : public LayerBase<Dense> {
 public:
  explicit Dense(std::int64_t units, DenseOptions options = {});
  std::string class_name() const override { return "Dense"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

  std::int64_t units() const { return units_; }
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& bias() const { return bias_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  std::int64_t units_;
  DenseOptions options_;
  VariablePtr kernel_, bias_;
};

}  // namespace strata
