#include "layers/reshape.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
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

Permute::Permute(std::vector<int> dims, LayerOptions options)
    : LayerBase(options.name, "permute", options.trainable), dims_(std::move(dims)) {
  std::vector<int> sorted = dims_;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != int(i) + 1)
      throw std::invalid_argument(fmt::format("Permute '{}': dims ({}) must be a permutation of 1 .. {}", name(), fmt::join(dims_, ", "),
                                              dims_.size()));
}

Tensor Permute::call(const Tensor& inputs) {
  if (inputs.rank() != int(dims_.size()) + 1)
    throw std::invalid_argument(fmt::format("Permute: dims ({}) need inputs of rank {}, got {}", fmt::join(dims_, ", "), dims_.size() + 1,
                                            inputs.shape().to_string()));
  std::vector<int> axes{0};
  axes.insert(axes.end(), dims_.begin(), dims_.end());
  return ops::transpose(inputs, axes);
}

Json Permute::get_config() const {
  Json c = Layer::get_config();
  c["dims"] = dims_;
  return c;
}

LayerPtr Permute::from_config(const Json& c) {
  config::check_keys(c, "Permute", {"dims"});
  if (!c.contains("dims") || !c.at("dims").is_array() ||
      !std::all_of(c.at("dims").begin(), c.at("dims").end(), [](const Json& d) { return d.is_number_integer(); }))
    throw std::invalid_argument("Permute: 'dims' must be a list of integers");
  return std::make_shared<Permute>(c.at("dims").get<std::vector<int>>(), LayerOptions{config::name(c), config::trainable(c)});
}

RepeatVector::RepeatVector(std::int64_t n, LayerOptions options) : LayerBase(options.name, "repeat_vector", options.trainable), n_(n) {
  if (n_ <= 0) throw std::invalid_argument(fmt::format("RepeatVector '{}': n must be positive, got {}", name(), n_));
}

Tensor RepeatVector::call(const Tensor& inputs) {
  if (inputs.rank() != 2)
    throw std::invalid_argument(fmt::format("RepeatVector expects inputs of shape (batch, features), got {}", inputs.shape().to_string()));
  // (batch, 1, features) broadcast against zeros (n, features): the gradient sums the n copies.
  return ops::add(ops::expand_dims(inputs, 1), ops::constant(0.f, inputs, Shape{n_, inputs.shape()[1]}));
}

Json RepeatVector::get_config() const {
  Json c = Layer::get_config();
  c["n"] = n_;
  return c;
}

LayerPtr RepeatVector::from_config(const Json& c) {
  config::check_keys(c, "RepeatVector", {"n"});
  if (!c.contains("n") || !c.at("n").is_number_integer()) throw std::invalid_argument("RepeatVector: 'n' must be a positive integer");
  return std::make_shared<RepeatVector>(c.at("n").get<std::int64_t>(), LayerOptions{config::name(c), config::trainable(c)});
}

LayerPtr Identity::from_config(const Json& c) {
  config::check_keys(c, "Identity", {});
  return std::make_shared<Identity>(LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
