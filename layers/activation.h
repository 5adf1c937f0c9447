// Activation: applies an activation function by name.
#pragma once

#include "layers/layer.h"

namespace strata {

class Activation : public LayerBase<Activation> {
 public:
  explicit Activation(std::string activation, LayerOptions options = {});
  std::string class_name() const override { return "Activation"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  std::string activation_;
};

}  // namespace strata
