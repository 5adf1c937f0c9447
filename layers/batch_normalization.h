// BatchNormalization as Keras 3 does it: while training (and trainable), normalise by the batch's mean and
// biased variance over every axis but `axis`, and move moving_mean / moving_variance towards them by
// `momentum`; otherwise normalise by the moving statistics. A frozen layer (trainable = false) is always in
// inference mode. Weights: gamma (scale), beta (center), moving_mean, moving_variance, in that order.
#pragma once

#include "layers/layer.h"

namespace strata {

struct BatchNormalizationOptions {
  int axis = -1;
  float momentum = 0.99f;
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
  Json beta_initializer = "zeros";
  Json gamma_initializer = "ones";
  Json moving_mean_initializer = "zeros";
  Json moving_variance_initializer = "ones";
  std::string name;
  bool trainable = true;
};

class BatchNormalization : public LayerBase<BatchNormalization> {
 public:
  explicit BatchNormalization(BatchNormalizationOptions options = {});
  std::string class_name() const override { return "BatchNormalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

  const VariablePtr& gamma() const { return gamma_; }
  const VariablePtr& beta() const { return beta_; }
  const VariablePtr& moving_mean() const { return moving_mean_; }
  const VariablePtr& moving_variance() const { return moving_variance_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  BatchNormalizationOptions options_;
  int axis_ = -1;  // normalised against the input's rank at build
  VariablePtr gamma_, beta_, moving_mean_, moving_variance_;
};

}  // namespace strata
