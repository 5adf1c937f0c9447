#include "layers/noise.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

namespace {

NoiseOptions options_from_config(const Json& c) {
  return NoiseOptions{.seed = config::seed(c), .name = config::name(c), .trainable = config::trainable(c)};
}

}  // namespace

GaussianNoise::GaussianNoise(float stddev, NoiseOptions options)
    : LayerBase(options.name, "gaussian_noise", options.trainable), stddev_(stddev), seed_(options.seed) {
  if (!(stddev_ >= 0.f)) throw std::invalid_argument(fmt::format("GaussianNoise '{}': stddev must be at least 0, got {}", name(), stddev_));
}

Tensor GaussianNoise::call(const Tensor& inputs) {
  if (stddev_ == 0.f) return inputs;
  return ops::in_train_phase(ops::add(inputs, ops::random_normal_like(inputs, 0.f, stddev_, seed_.value())), inputs);
}

Json GaussianNoise::get_config() const {
  Json c = Layer::get_config();
  c["stddev"] = stddev_;
  c["seed"] = seed_.config();
  return c;
}

LayerPtr GaussianNoise::from_config(const Json& c) {
  config::check_keys(c, "GaussianNoise", {"stddev", "seed"});
  return std::make_shared<GaussianNoise>(config::number(c, "stddev", "GaussianNoise"), options_from_config(c));
}

GaussianDropout::GaussianDropout(float rate, NoiseOptions options)
    : LayerBase(options.name, "gaussian_dropout", options.trainable), rate_(rate), seed_(options.seed) {
  if (!(rate_ >= 0.f && rate_ <= 1.f))
    throw std::invalid_argument(fmt::format("GaussianDropout '{}': rate must be in [0, 1], got {}", name(), rate_));
}

Tensor GaussianDropout::call(const Tensor& inputs) {
  // Keras divides by zero at rate 1 when training (its config allows it); here that rate is the identity.
  if (rate_ == 0.f || rate_ == 1.f) return inputs;
  const float stddev = std::sqrt(rate_ / (1.f - rate_));
  return ops::in_train_phase(ops::multiply(inputs, ops::random_normal_like(inputs, 1.f, stddev, seed_.value())), inputs);
}

Json GaussianDropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = seed_.config();
  return c;
}

LayerPtr GaussianDropout::from_config(const Json& c) {
  config::check_keys(c, "GaussianDropout", {"rate", "seed"});
  return std::make_shared<GaussianDropout>(config::number(c, "rate", "GaussianDropout"), options_from_config(c));
}

AlphaDropout::AlphaDropout(float rate, NoiseOptions options)
    : LayerBase(options.name, "alpha_dropout", options.trainable), rate_(rate), seed_(options.seed) {
  if (!(rate_ >= 0.f && rate_ <= 1.f))
    throw std::invalid_argument(fmt::format("AlphaDropout '{}': rate must be in [0, 1], got {}", name(), rate_));
}

Tensor AlphaDropout::call(const Tensor& inputs) {
  // Keras's rule (as in its implementation, at rate 1 too: every value becomes 0 - its mean shift is undefined
  // there, so rate 1 is the identity here as in GaussianDropout).
  if (rate_ == 0.f || rate_ == 1.f) return inputs;
  const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  const double alpha_p = -alpha * scale, rate = rate_;
  const float a = float(1.0 / std::sqrt((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p)));
  const float b = float(-double(a) * alpha_p * rate);
  const Tensor kept = ops::greater_equal(ops::random_uniform_like(inputs, 0.f, 1.f, seed_.value()), rate_);
  // inputs where kept, alpha_p elsewhere: (inputs - alpha_p) * kept + alpha_p.
  const Tensor dropped = ops::add(ops::multiply(ops::subtract(inputs, float(alpha_p)), kept), float(alpha_p));
  return ops::in_train_phase(ops::add(ops::multiply(dropped, a), b), inputs);
}

Json AlphaDropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = seed_.config();
  c["noise_shape"] = nullptr;
  return c;
}

LayerPtr AlphaDropout::from_config(const Json& c) {
  config::check_keys(c, "AlphaDropout", {"rate", "seed"});  // a set noise_shape is refused here, naming the key
  return std::make_shared<AlphaDropout>(config::number(c, "rate", "AlphaDropout"), options_from_config(c));
}

}  // namespace strata
