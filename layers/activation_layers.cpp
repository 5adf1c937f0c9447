#include "layers/activation_layers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"

namespace strata {

namespace {

Json int_or_list_json(const std::vector<int>& axes) { return axes.size() == 1 ? Json(axes[0]) : Json(axes); }

}  // namespace

// ---- ReLU ----

ReLU::ReLU(ReLUOptions options) : LayerBase(options.name, "re_lu", options.trainable), options_(std::move(options)) {
  const auto negative = [](float v) { return !(v >= 0.f); };  // NaN is refused too
  if (options_.max_value && negative(*options_.max_value))
    throw std::invalid_argument(fmt::format("ReLU '{}': max_value must be at least 0, got {}", name(), *options_.max_value));
  if (negative(options_.negative_slope))
    throw std::invalid_argument(fmt::format("ReLU '{}': negative_slope must be at least 0, got {}", name(), options_.negative_slope));
  if (negative(options_.threshold))
    throw std::invalid_argument(fmt::format("ReLU '{}': threshold must be at least 0, got {}", name(), options_.threshold));
}

Tensor ReLU::call(const Tensor& inputs) {
  const float slope = options_.negative_slope, threshold = options_.threshold;
  bool clip_max = options_.max_value.has_value();
  Tensor y;
  if (threshold != 0.f) {
    y = ops::multiply(inputs, ops::greater(inputs, threshold));  // x where x > threshold, else 0
  } else if (clip_max && *options_.max_value == 6.f) {
    y = ops::relu6(inputs);  // one primitive for MobileNet's ReLU(6.)
    clip_max = false;
  } else {
    y = ops::relu(inputs);
  }
  if (clip_max) y = ops::clip(y, 0.f, *options_.max_value);
  if (slope == 0.f) return y;
  // Below the threshold the output is slope * (x - threshold).
  const Tensor below = ops::relu(threshold != 0.f ? ops::add(ops::negative(inputs), threshold) : ops::negative(inputs));
  return ops::subtract(y, ops::multiply(below, slope));
}

Json ReLU::get_config() const {
  Json c = Layer::get_config();
  c["max_value"] = options_.max_value ? Json(*options_.max_value) : Json(nullptr);
  c["negative_slope"] = options_.negative_slope;
  c["threshold"] = options_.threshold;
  return c;
}

LayerPtr ReLU::from_config(const Json& c) {
  config::check_keys(c, "ReLU", {"max_value", "negative_slope", "threshold"});
  ReLUOptions o{.negative_slope = config::number(c, "negative_slope", "ReLU", 0.f),
                .threshold = config::number(c, "threshold", "ReLU", 0.f),
                .name = config::name(c), .trainable = config::trainable(c)};
  if (c.contains("max_value") && !c.at("max_value").is_null()) o.max_value = config::number(c, "max_value", "ReLU");
  return std::make_shared<ReLU>(o);
}

// ---- LeakyReLU ----

LeakyReLU::LeakyReLU(float negative_slope, LayerOptions options)
    : LayerBase(options.name, "leaky_re_lu", options.trainable), negative_slope_(negative_slope) {
  if (!(negative_slope_ >= 0.f))
    throw std::invalid_argument(fmt::format("LeakyReLU '{}': negative_slope must be at least 0, got {}", name(), negative_slope_));
}

Tensor LeakyReLU::call(const Tensor& inputs) { return ops::leaky_relu(inputs, negative_slope_); }

Json LeakyReLU::get_config() const {
  Json c = Layer::get_config();
  c["negative_slope"] = negative_slope_;
  return c;
}

LayerPtr LeakyReLU::from_config(const Json& c) {
  // Keras 2 (tf.keras) files call the slope "alpha"; Keras 3 reads it as negative_slope too.
  config::check_keys(c, "LeakyReLU", {"negative_slope", "alpha"});
  const float slope = config::number(c, "negative_slope", "LeakyReLU", config::number(c, "alpha", "LeakyReLU", 0.3f));
  return std::make_shared<LeakyReLU>(slope, LayerOptions{config::name(c), config::trainable(c)});
}

// ---- PReLU ----

PReLU::PReLU(PReLUOptions options) : LayerBase(options.name, "p_re_lu", options.trainable), options_(std::move(options)) {
  get_initializer(options_.alpha_initializer);
}

void PReLU::build(const Shape& input_shape) {
  Shape param;
  for (int i = 1; i < input_shape.rank(); ++i) param.push_back(input_shape[i]);
  for (int axis : options_.shared_axes) {
    if (axis < 1 || axis >= input_shape.rank())
      throw std::invalid_argument(fmt::format("PReLU '{}': shared axis {} is not an axis after the batch axis of {}", name(), axis,
                                              input_shape.to_string()));
    param[axis - 1] = 1;
  }
  alpha_ = add_weight("alpha", param, options_.alpha_initializer);
}

Tensor PReLU::call(const Tensor& inputs) {
  return ops::subtract(ops::relu(inputs), ops::multiply(alpha_, ops::relu(ops::negative(inputs))));
}

Json PReLU::get_config() const {
  Json c = Layer::get_config();
  c["alpha_initializer"] = get_initializer(options_.alpha_initializer)->to_json();
  c["alpha_regularizer"] = nullptr;
  c["alpha_constraint"] = nullptr;
  c["shared_axes"] = options_.shared_axes.empty() ? Json(nullptr) : Json(options_.shared_axes);
  return c;
}

LayerPtr PReLU::from_config(const Json& c) {
  config::check_keys(c, "PReLU", {"alpha_initializer", "shared_axes"});
  PReLUOptions o{.alpha_initializer = config::initializer(c, "alpha_initializer", "zeros"),
                 .shared_axes = config::axes(c, "shared_axes", "PReLU", {}), .name = config::name(c), .trainable = config::trainable(c)};
  return std::make_shared<PReLU>(o);
}

// ---- ELU ----

ELU::ELU(float alpha, LayerOptions options) : LayerBase(options.name, "elu", options.trainable), alpha_(alpha) {}

Tensor ELU::call(const Tensor& inputs) { return ops::elu(inputs, alpha_); }

Json ELU::get_config() const {
  Json c = Layer::get_config();
  c["alpha"] = alpha_;
  return c;
}

LayerPtr ELU::from_config(const Json& c) {
  config::check_keys(c, "ELU", {"alpha"});
  return std::make_shared<ELU>(config::number(c, "alpha", "ELU", 1.f), LayerOptions{config::name(c), config::trainable(c)});
}

// ---- Softmax ----

Softmax::Softmax(std::vector<int> axis, LayerOptions options)
    : LayerBase(options.name, "softmax", options.trainable), axis_(std::move(axis)) {
  if (axis_.empty()) throw std::invalid_argument(fmt::format("Softmax '{}': axis is empty", name()));
}

Tensor Softmax::call(const Tensor& inputs) {
  if (axis_.size() == 1) return ops::softmax(inputs, axis_[0]);
  const Tensor shifted = ops::subtract(inputs, ops::stop_gradient(ops::max(inputs, axis_, true)));
  const Tensor e = ops::exp(shifted);
  return ops::divide(e, ops::sum(e, axis_, true));
}

Json Softmax::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = int_or_list_json(axis_);
  return c;
}

LayerPtr Softmax::from_config(const Json& c) {
  config::check_keys(c, "Softmax", {"axis"});
  return std::make_shared<Softmax>(config::axes(c, "axis", "Softmax", {-1}), LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
