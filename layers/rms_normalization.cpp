#include "layers/rms_normalization.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

RMSNormalization::RMSNormalization(std::vector<int> axis, float epsilon, LayerOptions options)
    : LayerBase(options.name, "rms_normalization", options.trainable), axis_(std::move(axis)), epsilon_(epsilon) {
  if (axis_.empty()) throw std::invalid_argument(fmt::format("RMSNormalization '{}': axis is empty", name()));
  std::sort(axis_.begin(), axis_.end());  // as Keras keeps them
}

void RMSNormalization::build(const Shape& input_shape) {
  const int rank = input_shape.rank();
  resolved_.clear();
  std::vector<std::int64_t> weight_shape;
  for (int a : axis_) {
    if (a < -rank || a >= rank || a == 0 || a == -rank)
      throw std::invalid_argument(fmt::format("RMSNormalization '{}': axis {} is not a non-batch axis of {}", name(), a, input_shape.to_string()));
    const int d = a < 0 ? a + rank : a;
    if (input_shape[d] <= 0)
      throw std::invalid_argument(fmt::format("RMSNormalization '{}': axis {} of {} has no known size", name(), a, input_shape.to_string()));
    resolved_.push_back(d);
  }
  std::sort(resolved_.begin(), resolved_.end());
  if (std::adjacent_find(resolved_.begin(), resolved_.end()) != resolved_.end())
    throw std::invalid_argument(fmt::format("RMSNormalization '{}': axis names one axis twice", name()));
  scale_shape_.assign(std::size_t(rank), 1);
  for (int d : resolved_) {
    weight_shape.push_back(input_shape[d]);
    scale_shape_[std::size_t(d)] = input_shape[d];
  }
  scale_ = add_weight("scale", Shape(weight_shape), "ones");
}

Tensor RMSNormalization::call(const Tensor& inputs) {
  const Tensor inv_rms = ops::rsqrt(ops::add(ops::mean(ops::square(inputs), resolved_, true), epsilon_));
  return ops::multiply(ops::multiply(inputs, inv_rms), ops::reshape(ops::variable(scale_, inputs), scale_shape_));
}

Json RMSNormalization::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = axis_;
  c["epsilon"] = epsilon_;
  return c;
}

LayerPtr RMSNormalization::from_config(const Json& c) {
  config::check_keys(c, "RMSNormalization", {"axis", "epsilon"});
  return std::make_shared<RMSNormalization>(config::axes(c, "axis", "RMSNormalization", {-1}), c.value("epsilon", 1e-6f),
                                            LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
