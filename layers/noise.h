// GaussianNoise, GaussianDropout and AlphaDropout: noise while training, identity otherwise, as Keras's
// regularisation layers (and the input of Keras's denoising autoencoders).
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct NoiseOptions {
  std::optional<std::uint64_t> seed = std::nullopt;  // unset: drawn from the global seed
  std::string name;
  bool trainable = true;
};

namespace detail {
NoiseOptions noise_options_from_config(const Json& config);
// Throws naming the layer when `rate` is outside [0, 1].
float checked_noise_rate(float rate, const std::string& class_name, const std::string& layer_name);
}  // namespace detail

// What the three layers share: one number, saved under Self::kParameterKey (stddev or rate), and a seed;
// each layer gives its class name, default name and noise.
template <class Self>
class NoiseLayer : public LayerBase<Self> {
 public:
  std::string class_name() const override { return Self::kClassName; }
  Json get_config() const override {
    Json c = Layer::get_config();
    c[Self::kParameterKey] = parameter_;
    c["seed"] = seed_.config();
    return c;
  }
  static LayerPtr from_config(const Json& c) {
    config::check_keys(c, Self::kClassName, {Self::kParameterKey, "seed"});
    return std::make_shared<Self>(config::number(c, Self::kParameterKey, Self::kClassName), detail::noise_options_from_config(c));
  }

 protected:
  NoiseLayer(float parameter, const NoiseOptions& options, const char* default_name)
      : LayerBase<Self>(options.name, default_name, options.trainable), parameter_(parameter), seed_(options.seed) {}
  bool supports_masking() const override { return true; }

  float parameter_;
  LayerSeed seed_;
};

// x + N(0, stddev) while training.
class GaussianNoise : public NoiseLayer<GaussianNoise> {
 public:
  static constexpr const char* kClassName = "GaussianNoise";
  static constexpr const char* kParameterKey = "stddev";
  explicit GaussianNoise(float stddev, NoiseOptions options = {});

 protected:
  Tensor call(const Tensor& inputs) override;
};

// x * N(1, sqrt(rate / (1 - rate))) while training.
class GaussianDropout : public NoiseLayer<GaussianDropout> {
 public:
  static constexpr const char* kClassName = "GaussianDropout";
  static constexpr const char* kParameterKey = "rate";
  explicit GaussianDropout(float rate, NoiseOptions options = {});

 protected:
  Tensor call(const Tensor& inputs) override;
};

// keras.layers.AlphaDropout: while training, each value is kept with probability 1 - rate or set to SELU's
// negative saturation -alpha * scale, then a * x + b restores the mean and variance (for SELU networks);
// the identity otherwise.
class AlphaDropout : public NoiseLayer<AlphaDropout> {
 public:
  static constexpr const char* kClassName = "AlphaDropout";
  static constexpr const char* kParameterKey = "rate";  // a set noise_shape is refused by from_config, naming the key
  explicit AlphaDropout(float rate, NoiseOptions options = {});
  Json get_config() const override;

 protected:
  Tensor call(const Tensor& inputs) override;
};

}  // namespace strata
