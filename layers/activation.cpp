#include "layers/activation.h"

#include <stdexcept>

#include "layers/activations.h"

namespace strata {

Activation::Activation(std::string activation, LayerOptions options)
    : LayerBase(options.name, "activation", options.trainable), activation_(std::move(activation)) {
  check_activation(activation_);
}

Tensor Activation::call(const Tensor& inputs) { return apply_activation(activation_, inputs); }

Json Activation::get_config() const {
  Json c = Layer::get_config();
  c["activation"] = activation_.empty() || activation_ == "None" ? "linear" : activation_;
  return c;
}

LayerPtr Activation::from_config(const Json& c) {
  config::check_keys(c, "Activation", {"activation"});
  if (!c.contains("activation") || !c.at("activation").is_string())
    throw std::invalid_argument("Activation: 'activation' must be a name");
  return std::make_shared<Activation>(c.at("activation").get<std::string>(), LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
