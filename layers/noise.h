// GaussianNoise and GaussianDropout: noise while training, identity otherwise, as Keras's regularisation
// layers (and the input of Keras's denoising autoencoders).
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct NoiseOptions {
  std::optional<std::uint64_t> seed = std::nullopt;  // unset: drawn from the global seed
  std::string name;
  bool trainable = true;
};

// x + N(0, stddev) while training.
class GaussianNoise : public LayerBase<GaussianNoise> {
 public:
  explicit GaussianNoise(float stddev, NoiseOptions options = {});
  std::string class_name() const override { return "GaussianNoise"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float stddev_;
  LayerSeed seed_;
};

// x * N(1, sqrt(rate / (1 - rate))) while training.
class GaussianDropout : public LayerBase<GaussianDropout> {
 public:
  explicit GaussianDropout(float rate, NoiseOptions options = {});
  std::string class_name() const override { return "GaussianDropout"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float rate_;
  LayerSeed seed_;
};

// keras.layers.AlphaDropout: while training, each value is kept with probability 1 - rate or set to SELU's
// negative saturation -alpha * scale, then a * x + b restores the mean and variance (for SELU networks);
// the identity otherwise.
class AlphaDropout : public LayerBase<AlphaDropout> {
 public:
  explicit AlphaDropout(float rate, NoiseOptions options = {});
  std::string class_name() const override { return "AlphaDropout"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float rate_;
  LayerSeed seed_;
};

}  // namespace strata
