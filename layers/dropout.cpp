#include "layers/dropout.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Dropout::Dropout(float rate, DropoutOptions options)
    : LayerBase(options.name, "dropout", options.trainable), rate_(rate), user_seed_(options.seed),
      seed_(options.seed ? *options.seed : next_random_seed()) {
  if (!(rate_ >= 0.f && rate_ < 1.f))
    throw std::invalid_argument(fmt::format("Dropout '{}': rate must be in [0, 1), got {}", name(), rate_));
}

Tensor Dropout::call(const Tensor& inputs) { return rate_ > 0.f ? ops::dropout(inputs, rate_, seed_) : inputs; }

Json Dropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = user_seed_ ? Json(*user_seed_) : Json(nullptr);
  c["noise_shape"] = nullptr;
  return c;
}

LayerPtr Dropout::from_config(const Json& c) {
  config::check_keys(c, "Dropout", {"rate", "seed"});
  if (!c.contains("rate") || !c.at("rate").is_number()) throw std::invalid_argument("Dropout: 'rate' must be a number");
  DropoutOptions o;
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  if (c.contains("seed") && c.at("seed").is_number_integer()) o.seed = c.at("seed").get<std::uint64_t>();
  return std::make_shared<Dropout>(c.at("rate").get<float>(), o);
}

}  // namespace strata
