// Reshape: (batch, ...) -> (batch, target_shape...); one target dimension may be -1 (inferred).
// Permute: the non-batch axes in a new order. RepeatVector: (batch, features) -> (batch, n, features).
// Identity: the input unchanged.
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

// dims: a permutation of 1 .. rank-1 (1 is the first axis after the batch), as Keras writes it.
class Permute : public LayerBase<Permute> {
 public:
  explicit Permute(std::vector<int> dims, LayerOptions options = {});
  std::string class_name() const override { return "Permute"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::vector<int> dims_;
};

class RepeatVector : public LayerBase<RepeatVector> {
 public:
  explicit RepeatVector(std::int64_t n, LayerOptions options = {});
  std::string class_name() const override { return "RepeatVector"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::int64_t n_;
};

class Identity : public LayerBase<Identity> {
 public:
  explicit Identity(LayerOptions options = {}) : LayerBase(options.name, "identity", options.trainable) {}
  std::string class_name() const override { return "Identity"; }
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override { return inputs; }
  bool supports_masking() const override { return true; }
};

}  // namespace strata
