// keras.layers.EinsumDense: activation(einsum(equation, inputs, kernel) + bias), the kernel's shape read
// from the equation, the input shape and the output shape as Keras reads them; the bias spans the output
// from the first of bias_axes on, 1 along the output dimensions not in bias_axes. Equations are "X,Y->Z",
// "...X,Y->...Z" or "X...,Y->Z..." (X, Y, Z letters), as Keras takes them.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct EinsumDenseOptions {
  std::string activation;  // empty: linear
  std::string bias_axes;   // empty: no bias
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

class EinsumDense : public LayerBase<EinsumDense> {
 public:
  // `output_shape`: the output's dimensions after the batch one (and after the ones "..." stands for on the
  // left); -1 where the input gives the size.
  EinsumDense(std::string equation, std::vector<std::int64_t> output_shape, EinsumDenseOptions options = {});
  std::string class_name() const override { return "EinsumDense"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& bias() const { return bias_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;

 private:
  std::string equation_;
  std::vector<std::int64_t> output_shape_;
  EinsumDenseOptions options_;
  VariablePtr kernel_, bias_;
};

}  // namespace strata
