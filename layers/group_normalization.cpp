#include "layers/group_normalization.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"

namespace strata {

GroupNormalization::GroupNormalization(GroupNormalizationOptions options)
    : LayerBase(options.name, "group_normalization", options.trainable), options_(std::move(options)) {
  if (options_.groups == 0 || options_.groups < -1)
    throw std::invalid_argument(fmt::format("GroupNormalization '{}': groups must be positive or -1, got {}", name(), options_.groups));
  get_initializer(options_.beta_initializer);
  get_initializer(options_.gamma_initializer);
}

void GroupNormalization::build(const Shape& input_shape) {
  const int rank = input_shape.rank();
  if (options_.axis < -rank || options_.axis >= rank || options_.axis == 0 || options_.axis == -rank)
    throw std::invalid_argument(fmt::format("axis {} is not a channel axis of {}", options_.axis, input_shape.to_string()));
  axis_ = options_.axis < 0 ? options_.axis + rank : options_.axis;
  const std::int64_t channels = input_shape[axis_];
  if (channels <= 0) throw std::invalid_argument(fmt::format("the channel axis {} of {} has no known size", axis_, input_shape.to_string()));
  groups_ = options_.groups == -1 ? int(channels) : options_.groups;
  if (channels < groups_ || channels % groups_ != 0)
    throw std::invalid_argument(fmt::format("{} channels cannot be split into {} groups of equal size", channels, groups_));
  if (options_.scale) gamma_ = add_weight("gamma", {channels}, options_.gamma_initializer);
  if (options_.center) beta_ = add_weight("beta", {channels}, options_.beta_initializer);
}

Tensor GroupNormalization::call(const Tensor& inputs) {
  const Shape shape = inputs.shape();
  const std::int64_t per_group = shape[axis_] / groups_;
  // (batch, ..., groups, channels per group, ...): statistics over every axis but the batch and the group.
  std::vector<std::int64_t> grouped{-1}, broadcast;
  std::vector<int> reduce;
  for (int d = 1; d < shape.rank(); ++d) {
    if (d == axis_) {
      grouped.insert(grouped.end(), {groups_, per_group});
    } else {
      grouped.push_back(shape[d]);
    }
  }
  for (int d = 0; d < int(grouped.size()); ++d) {
    const bool group_axis = d == axis_;
    broadcast.push_back(group_axis ? groups_ : d == axis_ + 1 ? per_group : 1);
    if (d > 0 && !group_axis) reduce.push_back(d);
  }
  const Tensor x = ops::reshape(inputs, grouped);
  const Tensor mean = ops::mean(x, reduce, true);
  const Tensor variance = ops::mean(ops::square(ops::subtract(x, mean)), reduce, true);
  Tensor inv = ops::rsqrt(ops::add(variance, options_.epsilon));
  if (gamma_) inv = ops::multiply(inv, ops::reshape(ops::variable(gamma_, x), broadcast));
  Tensor shift = ops::negative(ops::multiply(mean, inv));
  if (beta_) shift = ops::add(shift, ops::reshape(ops::variable(beta_, x), broadcast));
  std::vector<std::int64_t> original{-1};
  for (int d = 1; d < shape.rank(); ++d) original.push_back(shape[d]);
  return ops::reshape(ops::add(ops::multiply(x, inv), shift), original);
}

Json GroupNormalization::get_config() const {
  Json c = Layer::get_config();
  c["groups"] = options_.groups;
  c["axis"] = options_.axis;
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["beta_initializer"] = get_initializer(options_.beta_initializer)->to_json();
  c["gamma_initializer"] = get_initializer(options_.gamma_initializer)->to_json();
  for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"}) c[k] = nullptr;
  return c;
}

LayerPtr GroupNormalization::from_config(const Json& c) {
  config::check_keys(c, "GroupNormalization", {"groups", "axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer"});
  const std::vector<int> axis = config::axes(c, "axis", "GroupNormalization", {-1});
  if (axis.size() != 1) throw std::invalid_argument("GroupNormalization: 'axis' must be one axis");
  GroupNormalizationOptions o;
  if (c.contains("groups") && !c.at("groups").is_null()) {
    if (!c.at("groups").is_number_integer()) throw std::invalid_argument("GroupNormalization: 'groups' must be an integer");
    o.groups = c.at("groups").get<int>();
  }
  o.axis = axis[0];
  o.epsilon = c.value("epsilon", 1e-3f);
  o.center = c.value("center", true);
  o.scale = c.value("scale", true);
  o.beta_initializer = config::initializer(c, "beta_initializer", "zeros");
  o.gamma_initializer = config::initializer(c, "gamma_initializer", "ones");
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<GroupNormalization>(o);
}

UnitNormalization::UnitNormalization(std::vector<int> axis, LayerOptions options)
    : LayerBase(options.name, "unit_normalization", options.trainable), axis_(std::move(axis)) {
  if (axis_.empty()) throw std::invalid_argument(fmt::format("UnitNormalization '{}': axis is empty", name()));
}

Tensor UnitNormalization::call(const Tensor& inputs) {
  // x * min(rsqrt(sum x^2), 1e12): Keras's L2 normalisation, which leaves a zero vector zero.
  const Tensor inv_norm = ops::minimum(ops::rsqrt(ops::sum(ops::square(inputs), axis_, true)), 1e12f);
  return ops::multiply(inputs, inv_norm);
}

Json UnitNormalization::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = axis_;
  return c;
}

LayerPtr UnitNormalization::from_config(const Json& c) {
  config::check_keys(c, "UnitNormalization", {"axis"});
  return std::make_shared<UnitNormalization>(config::axes(c, "axis", "UnitNormalization", {-1}), LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
