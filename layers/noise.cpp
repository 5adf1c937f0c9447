#include "layers/noise.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

namespace detail {

NoiseOptions noise_options_from_config(const Json& c) {
  return NoiseOptions{.seed = config::seed(c), .name = config::name(c), .trainable = config::trainable(c)};
}

float checked_noise_rate(float rate, const std::string& class_name, const std::string& layer_name) {
  if (!(rate >= 0.f && rate <= 1.f)) throw std::invalid_argument(fmt::format("{} '{}': rate must be in [0, 1], got {}", class_name, layer_name, rate));
  return rate;
}

}  // namespace detail

GaussianNoise::GaussianNoise(float stddev, NoiseOptions options) : NoiseLayer(stddev, options, "gaussian_noise") {
  if (!(parameter_ >= 0.f)) throw std::invalid_argument(fmt::format("GaussianNoise '{}': stddev must be at least 0, got {}", name(), parameter_));
}

Tensor GaussianNoise::call(const Tensor& inputs) {
  const float stddev = parameter_;
  if (stddev == 0.f) return inputs;
  return ops::in_train_phase(ops::add(inputs, ops::random_normal_like(inputs, 0.f, stddev, seed_.value())), inputs);
}

GaussianDropout::GaussianDropout(float rate, NoiseOptions options) : NoiseLayer(rate, options, "gaussian_dropout") {
  detail::checked_noise_rate(parameter_, kClassName, name());
}

Tensor GaussianDropout::call(const Tensor& inputs) {
  const float rate = parameter_;
  // Keras divides by zero at rate 1 when training (its config allows it); here that rate is the identity.
  if (rate == 0.f || rate == 1.f) return inputs;
  const float stddev = std::sqrt(rate / (1.f - rate));
  return ops::in_train_phase(ops::multiply(inputs, ops::random_normal_like(inputs, 1.f, stddev, seed_.value())), inputs);
}

AlphaDropout::AlphaDropout(float rate, NoiseOptions options) : NoiseLayer(rate, options, "alpha_dropout") {
  detail::checked_noise_rate(parameter_, kClassName, name());
}

Tensor AlphaDropout::call(const Tensor& inputs) {
  // Keras's rule (as in its implementation, at rate 1 too: every value becomes 0 - its mean shift is undefined
  // there, so rate 1 is the identity here as in GaussianDropout).
  if (parameter_ == 0.f || parameter_ == 1.f) return inputs;
  const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  const double alpha_p = -alpha * scale, rate = parameter_;
  const float a = float(1.0 / std::sqrt((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p)));
  const float b = float(-double(a) * alpha_p * rate);
  const Tensor kept = ops::greater_equal(ops::random_uniform_like(inputs, 0.f, 1.f, seed_.value()), parameter_);
  // inputs where kept, alpha_p elsewhere: (inputs - alpha_p) * kept + alpha_p.
  const Tensor dropped = ops::add(ops::multiply(ops::subtract(inputs, float(alpha_p)), kept), float(alpha_p));
  return ops::in_train_phase(ops::add(ops::multiply(dropped, a), b), inputs);
}

Json AlphaDropout::get_config() const {
  Json c = NoiseLayer::get_config();
  c["noise_shape"] = nullptr;
  return c;
}

}  // namespace strata
