#include "layers/layer_normalization.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"

namespace strata {

LayerNormalization::LayerNormalization(LayerNormalizationOptions options)
    : LayerBase(options.name, "layer_normalization", options.trainable), options_(std::move(options)) {
  if (options_.axis.empty()) throw std::invalid_argument(fmt::format("{}: axis is empty", name()));
  if (!(options_.epsilon > 0.f)) throw std::invalid_argument(fmt::format("{}: epsilon must be positive", name()));
  get_initializer(options_.beta_initializer);
  get_initializer(options_.gamma_initializer);
}

void LayerNormalization::build(const Shape& input_shape) {
  axes_.clear();
  for (int a : options_.axis) {
    const int axis = a < 0 ? a + input_shape.rank() : a;
    if (axis <= 0 || axis >= input_shape.rank() || input_shape[axis] <= 0)
      throw std::invalid_argument(fmt::format("axis {} is not a known feature axis of {}", a, input_shape.to_string()));
    axes_.push_back(axis);
  }
  std::sort(axes_.begin(), axes_.end());
  Shape param;
  for (int axis : axes_) param.push_back(input_shape[axis]);
  if (options_.scale) gamma_ = add_weight("gamma", param, options_.gamma_initializer);
  if (options_.center && !options_.rms_scaling) beta_ = add_weight("beta", param, options_.beta_initializer);
}

Tensor LayerNormalization::call(const Tensor& x) {
  // gamma and beta hold the normalised axes only; shape them to broadcast against x.
  std::vector<std::int64_t> broadcast(std::size_t(x.rank()), 1);
  for (int axis : axes_) broadcast[std::size_t(axis)] = x.shape()[axis];
  auto param = [&](const VariablePtr& v) { return ops::reshape(ops::variable(v, x), broadcast); };
  const Tensor mean = ops::mean(x, axes_, true);
  const Tensor variance = ops::mean(ops::square(ops::subtract(x, mean)), axes_, true);
  Tensor inv = ops::rsqrt(ops::add(variance, options_.epsilon));
  if (gamma_) inv = ops::multiply(inv, param(gamma_));
  // rms_scaling, as keras.ops.layer_normalization computes it: x scaled by the inverse deviation, no shift.
  if (options_.rms_scaling) return ops::multiply(x, inv);
  Tensor y = ops::multiply(ops::subtract(x, mean), inv);
  if (beta_) y = ops::add(y, param(beta_));
  return y;
}

Json LayerNormalization::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = options_.axis;
  c["epsilon"] = options_.epsilon;
  c["center"] = options_.center;
  c["scale"] = options_.scale;
  c["rms_scaling"] = options_.rms_scaling;
  c["beta_initializer"] = get_initializer(options_.beta_initializer)->to_json();
  c["gamma_initializer"] = get_initializer(options_.gamma_initializer)->to_json();
  for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"}) c[k] = nullptr;
  return c;
}

LayerPtr LayerNormalization::from_config(const Json& c) {
  config::check_keys(c, "LayerNormalization", {"axis", "epsilon", "center", "scale", "rms_scaling", "beta_initializer", "gamma_initializer"});
  LayerNormalizationOptions o;
  o.axis = config::axes(c, "axis", "LayerNormalization", {-1});
  o.epsilon = c.value("epsilon", 1e-3f);
  o.center = c.value("center", true);
  o.scale = c.value("scale", true);
  o.rms_scaling = c.value("rms_scaling", false);
  o.beta_initializer = config::initializer(c, "beta_initializer", "zeros");
  o.gamma_initializer = config::initializer(c, "gamma_initializer", "ones");
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<LayerNormalization>(o);
}

}  // namespace strata
