// Keras's activation layers with parameters of their own: ReLU, LeakyReLU, PReLU, ELU, Softmax. Keras
// models save these as layers rather than as an `activation` name (MobileNet's ReLU(6.), for one).
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct ReLUOptions {
  std::optional<float> max_value = std::nullopt;  // unset: no upper clip
  float negative_slope = 0.f;
  float threshold = 0.f;
  std::string name;
  bool trainable = true;
};

// x above threshold (clipped at max_value), negative_slope * (x - threshold) below it: keras.activations.relu.
class ReLU : public LayerBase<ReLU> {
 public:
  explicit ReLU(ReLUOptions options = {});
  std::string class_name() const override { return "ReLU"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  ReLUOptions options_;
};

class LeakyReLU : public LayerBase<LeakyReLU> {
 public:
  explicit LeakyReLU(float negative_slope = 0.3f, LayerOptions options = {});
  std::string class_name() const override { return "LeakyReLU"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float negative_slope_;
};

struct PReLUOptions {
  Json alpha_initializer = "zeros";
  std::vector<int> shared_axes;  // axes (1 = the first after the batch) where one alpha serves every position
  std::string name;
  bool trainable = true;
};

// relu(x) - alpha * relu(-x) with a learned alpha of the input's shape without the batch axis (1 along
// shared_axes), as Keras stores it.
class PReLU : public LayerBase<PReLU> {
 public:
  explicit PReLU(PReLUOptions options = {});
  std::string class_name() const override { return "PReLU"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);
  const VariablePtr& alpha() const { return alpha_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  PReLUOptions options_;
  VariablePtr alpha_;
};

class ELU : public LayerBase<ELU> {
 public:
  explicit ELU(float alpha = 1.f, LayerOptions options = {});
  std::string class_name() const override { return "ELU"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float alpha_;
};

// Softmax over one axis, or jointly over several (exp(x - max) / sum over those axes).
class Softmax : public LayerBase<Softmax> {
 public:
  explicit Softmax(std::vector<int> axis = {-1}, LayerOptions options = {});
  std::string class_name() const override { return "Softmax"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  std::vector<int> axis_;
};

}  // namespace strata
