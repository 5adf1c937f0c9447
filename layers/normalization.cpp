#include "layers/normalization.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Normalization::Normalization(NormalizationOptions options)
    : LayerBase(options.name, "normalization", options.trainable), options_(std::move(options)) {
  if (options_.mean.has_value() != options_.variance.has_value())
    throw std::invalid_argument(fmt::format("Normalization '{}': give both mean and variance, or neither", name()));
  if (options_.mean) {
    if (options_.mean->shape != options_.variance->shape)
      throw std::invalid_argument(fmt::format("Normalization '{}': mean {} and variance {} differ in shape", name(),
                                              options_.mean->shape.to_string(), options_.variance->shape.to_string()));
    if (options_.mean->shape.rank() > int(options_.axis.size()))
      throw std::invalid_argument(fmt::format("Normalization '{}': mean {} has more dimensions than the {} kept axes", name(),
                                              options_.mean->shape.to_string(), options_.axis.size()));
  }
}

std::vector<int> Normalization::kept_axes(int rank) const {
  std::vector<int> kept;
  for (int a : options_.axis) {
    if (a < -rank || a >= rank)
      throw std::invalid_argument(fmt::format("Normalization '{}': axis {} is outside the {} dimensions of its input", name(), a, rank));
    kept.push_back(a < 0 ? a + rank : a);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

void Normalization::build(const Shape& input_shape) {
  kept_ = kept_axes(input_shape.rank());
  broadcast_shape_ = Shape();
  Shape kept_shape;
  for (int d = 0; d < input_shape.rank(); ++d) {
    const bool kept = std::find(kept_.begin(), kept_.end(), d) != kept_.end();
    if (kept && input_shape[d] < 0)
      throw std::invalid_argument(fmt::format("axis {} is kept but has no known size in {}", d, input_shape.to_string()));
    broadcast_shape_.push_back(kept ? input_shape[d] : 1);
    if (kept) kept_shape.push_back(input_shape[d]);
  }
  if (options_.mean) {
    // Keras aligns the given array with the last kept axes and broadcasts it over the rest.
    const config::NumberArray* given[2] = {&*options_.mean, &*options_.variance};
    VariablePtr* targets[2] = {&mean_, &variance_};
    for (int i = 0; i < 2; ++i) {
      const config::NumberArray& a = *given[i];
      Shape aligned;
      for (int d = 0; d < input_shape.rank(); ++d) aligned.push_back(1);
      for (int k = 1; k <= a.shape.rank(); ++k) {
        const int axis = kept_[kept_.size() - std::size_t(k)];
        const std::int64_t n = a.shape[a.shape.rank() - k];
        if (n != 1 && n != input_shape[axis])
          throw std::invalid_argument(fmt::format("{} {} does not fit the kept axes of input {}", i == 0 ? "mean" : "variance",
                                                  a.shape.to_string(), input_shape.to_string()));
        aligned[axis] = n;
      }
      auto v = std::make_shared<Variable>(name() + (i == 0 ? "/mean" : "/variance"), aligned, DType::float32, false);
      v->assign(a.values);
      *targets[i] = v;
    }
    return;
  }
  mean_ = add_weight("mean", kept_shape, "zeros", false);
  variance_ = add_weight("variance", kept_shape, "ones", false);
  count_ = add_weight("count", Shape(), "zeros", false);  // Keras keeps it in its files; adapt() on an array leaves it 0
  if (adapted_) {
    if (std::int64_t(adapted_->first.size()) != std::max<std::int64_t>(kept_shape.numel(), 1))
      throw std::invalid_argument(fmt::format("adapt() saw {} statistics, input {} keeps {}", adapted_->first.size(),
                                              input_shape.to_string(), kept_shape.to_string()));
    mean_->assign(adapted_->first);
    variance_->assign(adapted_->second);
    adapted_.reset();
  }
}

Tensor Normalization::call(const Tensor& inputs) {
  const Tensor x = inputs.dtype() == DType::float32 ? inputs : ops::cast(inputs, DType::float32);
  const std::vector<std::int64_t> broadcast(broadcast_shape_.begin(), broadcast_shape_.end());
  const auto as_broadcast = [&](const VariablePtr& v) { return ops::reshape(ops::variable(v, x), broadcast); };
  const Tensor mean = options_.mean ? ops::variable(mean_, x) : as_broadcast(mean_);
  const Tensor variance = options_.mean ? ops::variable(variance_, x) : as_broadcast(variance_);
  const Tensor scale = ops::maximum(ops::sqrt(variance), 1e-7f);  // Keras's backend epsilon
  return options_.invert ? ops::add(mean, ops::multiply(x, scale)) : ops::divide(ops::subtract(x, mean), scale);
}

void Normalization::adapt(const Array& data) {
  if (options_.mean) throw std::invalid_argument(fmt::format("Normalization '{}': adapt() on a layer given mean and variance", name()));
  const Shape& shape = data.shape();
  if (shape.rank() == 0 || data.rows() == 0) throw std::invalid_argument(fmt::format("Normalization '{}': adapt() needs samples, got {}", name(), shape.to_string()));
  const std::vector<int> kept = kept_axes(shape.rank());
  if (built()) {
    const Shape& built_shape = input_shape();
    const bool fits = built_shape.rank() == shape.rank() &&
                      std::all_of(kept.begin(), kept.end(), [&](int d) { return built_shape[d] == shape[d]; });
    if (!fits)
        throw std::invalid_argument(fmt::format("Normalization '{}': built for input {}, adapt() got data {}", name(),
                                                built_shape.to_string(), shape.to_string()));
  }
  // Position of each element among the kept axes' combinations, in row-major order of those axes.
  std::int64_t groups = 1;
  for (int d : kept) groups *= shape[d];
  std::vector<std::int64_t> group_of_axis_stride(std::size_t(shape.rank()), 0);
  for (std::int64_t stride = 1, k = std::int64_t(kept.size()) - 1; k >= 0; --k) {
    group_of_axis_stride[std::size_t(kept[std::size_t(k)])] = stride;
    stride *= shape[kept[std::size_t(k)]];
  }
  const std::vector<float> values = data.to_floats();
  // Calls f(group, value) for every element in row-major order.
  const auto for_each_element = [&](auto&& f) {
    std::vector<std::int64_t> index(std::size_t(shape.rank()), 0);
    for (float v : values) {
      std::int64_t g = 0;
      for (int d = 0; d < shape.rank(); ++d) g += index[std::size_t(d)] * group_of_axis_stride[std::size_t(d)];
      f(std::size_t(g), double(v));
      for (int d = shape.rank() - 1; d >= 0 && ++index[std::size_t(d)] == shape[d]; --d) index[std::size_t(d)] = 0;
    }
  };
  const double per_group = double(values.size()) / double(groups);
  std::vector<double> mean(std::size_t(groups), 0.0), sum_sq(std::size_t(groups), 0.0);
  for_each_element([&](std::size_t g, double v) { mean[g] += v / per_group; });
  // A second pass around the mean: the variance of values far from 0 stays exact.
  for_each_element([&](std::size_t g, double v) { sum_sq[g] += (v - mean[g]) * (v - mean[g]); });
  const std::vector<float> mean_values(mean.begin(), mean.end());
  std::vector<float> variance(static_cast<std::size_t>(groups));
  for (std::size_t g = 0; g < variance.size(); ++g) variance[g] = float(sum_sq[g] / per_group);
  if (mean_) {
    mean_->assign(mean_values);
    variance_->assign(variance);
  } else {
    adapted_ = {mean_values, std::move(variance)};
  }
}

Json Normalization::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = options_.axis;
  c["invert"] = options_.invert;
  c["mean"] = options_.mean ? config::number_array_to_json(*options_.mean) : Json(nullptr);
  c["variance"] = options_.variance ? config::number_array_to_json(*options_.variance) : Json(nullptr);
  return c;
}

LayerPtr Normalization::from_config(const Json& c) {
  config::check_keys(c, "Normalization", {"axis", "mean", "variance", "invert"});
  NormalizationOptions o{.name = config::name(c), .trainable = config::trainable(c)};
  // null (Keras's axis=None) keeps no axis: one mean and variance for everything.
  o.axis = c.contains("axis") && c.at("axis").is_null() ? std::vector<int>{} : config::axes(c, "axis", "Normalization", {-1});
  if (c.contains("invert") && !c.at("invert").is_null()) {
    if (!c.at("invert").is_boolean()) throw std::invalid_argument("Normalization: 'invert' must be true or false");
    o.invert = c.at("invert").get<bool>();
  }
  if (c.contains("mean") && !c.at("mean").is_null()) o.mean = config::number_array(c.at("mean"), "Normalization: 'mean'");
  if (c.contains("variance") && !c.at("variance").is_null()) o.variance = config::number_array(c.at("variance"), "Normalization: 'variance'");
  return std::make_shared<Normalization>(o);
}

}  // namespace strata
