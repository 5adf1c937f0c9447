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
    : LayerBase(options.name, "gaussian_noise", options.trainable), stddev_(stddev), user_seed_(options.seed),
      seed_(options.seed ? *options.seed : next_random_seed()) {
  if (!(stddev_ >= 0.f)) throw std::invalid_argument(fmt::format("GaussianNoise '{}': stddev must be at least 0, got {}", name(), stddev_));
}

Tensor GaussianNoise::call(const Tensor& inputs) {
  if (stddev_ == 0.f) return inputs;
  return ops::in_train_phase(ops::add(inputs, ops::random_normal_like(inputs, 0.f, stddev_, seed_)), inputs);
}

Json GaussianNoise::get_config() const {
  Json c = Layer::get_config();
  c["stddev"] = stddev_;
  c["seed"] = user_seed_ ? Json(*user_seed_) : Json(nullptr);
  return c;
}

LayerPtr GaussianNoise::from_config(const Json& c) {
  config::check_keys(c, "GaussianNoise", {"stddev", "seed"});
  return std::make_shared<GaussianNoise>(config::number(c, "stddev", "GaussianNoise"), options_from_config(c));
}

GaussianDropout::GaussianDropout(float rate, NoiseOptions options)
    : LayerBase(options.name, "gaussian_dropout", options.trainable), rate_(rate), user_seed_(options.seed),
      seed_(options.seed ? *options.seed : next_random_seed()) {
  if (!(rate_ >= 0.f && rate_ <= 1.f))
    throw std::invalid_argument(fmt::format("GaussianDropout '{}': rate must be in [0, 1], got {}", name(), rate_));
}

Tensor GaussianDropout::call(const Tensor& inputs) {
  // Keras divides by zero at rate 1 when training (its config allows it); here that rate is the identity.
  if (rate_ == 0.f || rate_ == 1.f) return inputs;
  const float stddev = std::sqrt(rate_ / (1.f - rate_));
  return ops::in_train_phase(ops::multiply(inputs, ops::random_normal_like(inputs, 1.f, stddev, seed_)), inputs);
}

Json GaussianDropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = user_seed_ ? Json(*user_seed_) : Json(nullptr);
  return c;
}

LayerPtr GaussianDropout::from_config(const Json& c) {
  config::check_keys(c, "GaussianDropout", {"rate", "seed"});
  return std::make_shared<GaussianDropout>(config::number(c, "rate", "GaussianDropout"), options_from_config(c));
}

}  // namespace strata
