#include "layers/flatten.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Flatten::Flatten(LayerOptions options) : LayerBase(options.name, "flatten", options.trainable) {}

Tensor Flatten::call(const Tensor& inputs) {
  std::int64_t features = 1;
  for (int i = 1; i < inputs.rank(); ++i) {
    if (inputs.shape()[i] < 0)
      throw std::invalid_argument(fmt::format("Flatten '{}': dimension {} of {} is unknown, so the flattened size would vary with the "
                                              "input (for inputs of any size, a global pooling gives a fixed size)",
                                              name(), i, inputs.shape().to_string()));
    features *= inputs.shape()[i];
  }
  return ops::reshape(inputs, {-1, features});
}

Json Flatten::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  return c;
}

LayerPtr Flatten::from_config(const Json& c) {
  config::check_keys(c, "Flatten", {"data_format"});
  config::require_channels_last(c, "Flatten");
  return std::make_shared<Flatten>(LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
