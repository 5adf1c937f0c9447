#include "layers/batch_normalization.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"

namespace strata {

BatchNormalization::BatchNormalization(BatchNormalizationOptions options)
    : LayerBase(options.name, "batch_normalization", options.trainable), options_(std::move(options)) {
  if (!(options_.momentum >= 0.f && options_.momentum <= 1.f))
    throw std::invalid_argument(fmt::format("{}: momentum must be in [0, 1], got {}", name(), options_.momentum));
  if (!(options_.epsilon > 0.f)) throw std::invalid_argument(fmt::format("{}: epsilon must be positive, got {}", name(), options_.epsilon));
  for (const Json* init : {&options_.beta_initializer, &options_.gamma_initializer, &options_.moving_mean_initializer,
                           &options_.moving_variance_initializer})
    get_initializer(*init);
}

void BatchNormalization::build(const Shape& input_shape) {
  const int rank = input_shape.rank();
  if (options_.axis < -rank || options_.axis >= rank || options_.axis == 0 || options_.axis == -rank)
    throw std::invalid_argument(fmt::format("axis {} is not a feature axis of input {}", options_.axis, input_shape.to_string()));
  axis_ = options_.axis < 0 ? options_.axis + rank : options_.axis;
  const std::int64_t features = input_shape[axis_];
  if (features <= 0) throw std::invalid_argument(fmt::format("axis {} of input {} must be known", options_.axis, input_shape.to_string()));
  if (options_.scale) gamma_ = add_weight("gamma", {features}, options_.gamma_initializer);
  if (options_.center) beta_ = add_weight("beta", {features}, options_.beta_initializer);
  moving_mean_ = add_weight("moving_mean", {features}, options_.moving_mean_initializer, false);
  moving_variance_ = add_weight("moving_variance", {features}, options_.moving_variance_initializer, false);
}

Tensor BatchNormalization::call(const Tensor& x) {
  const int rank = x.rank();
  std::vector<int> reduce_axes;
  std::vector<std::int64_t> broadcast_shape(static_cast<std::size_t>(rank), 1);
  for (int i = 0; i < rank; ++i)
    if (i != axis_) reduce_axes.push_back(i);
  broadcast_shape[std::size_t(axis_)] = x.shape()[axis_];
  // A per-feature vector shaped to broadcast against x.
  auto per_feature = [&](const Tensor& v) { return axis_ == rank - 1 ? v : ops::reshape(v, broadcast_shape); };
  auto param = [&](const VariablePtr& v) { return per_feature(ops::variable(v, x)); };
  // y = x * inv + (beta - mean * inv) with inv = gamma / sqrt(variance + epsilon), as Keras computes it.
  auto normalize = [&](const Tensor& mean, const Tensor& variance) {
    Tensor inv = ops::rsqrt(ops::add(variance, options_.epsilon));
    if (gamma_) inv = ops::multiply(inv, param(gamma_));
    Tensor shift = ops::negative(ops::multiply(mean, inv));
    if (beta_) shift = ops::add(shift, param(beta_));
    return ops::add(ops::multiply(x, inv), shift);
  };
  const Tensor inference = normalize(param(moving_mean_), param(moving_variance_));
  if (!trainable()) return inference;

  const Tensor mean = ops::mean(x, reduce_axes, true);
  const Tensor variance = ops::mean(ops::square(ops::subtract(x, mean)), reduce_axes, true);
  const std::vector<std::int64_t> flat{x.shape()[axis_]};
  const float m = options_.momentum;
  ops::assign(moving_mean_, ops::add(ops::multiply(ops::variable(moving_mean_, x), m), ops::multiply(ops::reshape(mean, flat), 1.f - m)));
  ops::assign(moving_variance_,
              ops::add(ops::multiply(ops::variable(moving_variance_, x), m), ops::multiply(ops::reshape(variance, flat), 1.f - m)));
  return ops::in_train_phase(normalize(mean, variance), inference);
}

Json BatchNormalization::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = options_.axis;
  c["momentum"] = options_.momentum;
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["beta_initializer"] = get_initializer(options_.beta_initializer)->to_json();
  c["gamma_initializer"] = get_initializer(options_.gamma_initializer)->to_json();
  c["moving_mean_initializer"] = get_initializer(options_.moving_mean_initializer)->to_json();
  c["moving_variance_initializer"] = get_initializer(options_.moving_variance_initializer)->to_json();
  for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"}) c[k] = nullptr;
  c["synchronized"] = false;
  return c;
}

LayerPtr BatchNormalization::from_config(const Json& c) {
  config::check_keys(c, "BatchNormalization", {"axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                                               "moving_mean_initializer", "moving_variance_initializer", "synchronized", "renorm",
                                               "renorm_clipping", "renorm_momentum"});
  if (c.value("renorm", false))
    throw std::invalid_argument("BatchNormalization: renorm=true (batch renormalization) is not supported; only renorm=false");
  BatchNormalizationOptions o;
  if (c.contains("axis")) {
    const Json& axis = c.at("axis");
    // Keras 2 writes the axis as a one-element list.
    if (axis.is_number_integer()) o.axis = axis.get<int>();
    else if (axis.is_array() && axis.size() == 1 && axis[0].is_number_integer()) o.axis = axis[0].get<int>();
    else throw std::invalid_argument(fmt::format("BatchNormalization: 'axis' must be one integer, got {}", axis.dump()));
  }
  o.momentum = c.value("momentum", 0.99f);
  o.epsilon = c.value("epsilon", 1e-3f);
  o.center = c.value("center", true);
  o.scale = c.value("scale", true);
  o.beta_initializer = config::initializer(c, "beta_initializer", "zeros");
  o.gamma_initializer = config::initializer(c, "gamma_initializer", "ones");
  o.moving_mean_initializer = config::initializer(c, "moving_mean_initializer", "zeros");
  o.moving_variance_initializer = config::initializer(c, "moving_variance_initializer", "ones");
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<BatchNormalization>(o);
}

}  // namespace strata
