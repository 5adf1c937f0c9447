#include "layers/reshape.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Reshape::Reshape(Shape target_shape, LayerOptions options)
    : LayerBase(options.name, "reshape", options.trainable), target_(target_shape) {
  int unknown = 0;
  for (auto d : target_) {
    if (d == -1) ++unknown;
    else if (d <= 0) throw std::invalid_argument(fmt::format("Reshape '{}': bad target shape {}", name(), target_.to_string()));
  }
  if (unknown > 1) throw std::invalid_argument(fmt::format("Reshape '{}': at most one -1 in target shape {}", name(), target_.to_string()));
}

Tensor Reshape::call(const Tensor& inputs) {
  // The batch stays unknown, so an inferred target dimension is resolved here from the known ones.
  std::int64_t in = 1, known = 1;
  for (int i = 1; i < inputs.rank(); ++i) in *= inputs.shape()[i];
  for (auto d : target_)
    if (d > 0) known *= d;
  std::vector<std::int64_t> shape{-1};
  for (auto d : target_) {
    if (d == -1 && (known == 0 || in % known != 0))
      throw std::invalid_argument(fmt::format("Reshape: cannot reshape {} to (None, {})", inputs.shape().to_string(), target_.to_string()));
    shape.push_back(d == -1 ? in / known : d);
  }
  std::int64_t out = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) out *= shape[i];
  if (out != in)
    throw std::invalid_argument(fmt::format("Reshape: input {} has {} values per sample, target shape {} has {}",
                                            inputs.shape().to_string(), in, target_.to_string(), out));
  return ops::reshape(inputs, shape);
}

Json Reshape::get_config() const {
  Json c = Layer::get_config();
  Json t = Json::array();
  for (auto d : target_) t.push_back(d);
  c["target_shape"] = t;
  return c;
}

LayerPtr Reshape::from_config(const Json& c) {
  config::check_keys(c, "Reshape", {"target_shape"});
  if (!c.contains("target_shape") || !c.at("target_shape").is_array()) throw std::invalid_argument("Reshape: 'target_shape' must be a list");
  Shape t;
  for (const Json& d : c.at("target_shape")) {
    if (!d.is_number_integer()) throw std::invalid_argument(fmt::format("Reshape: bad target_shape {}", c.at("target_shape").dump()));
    t.push_back(d.get<std::int64_t>());
  }
  return std::make_shared<Reshape>(t, LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
