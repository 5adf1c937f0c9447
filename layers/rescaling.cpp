#include "layers/rescaling.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

namespace {

config::NumberArray number(float v) { return {Shape(), {v}}; }

// A number stays a number operand; an array becomes a constant variable of its shape.
VariablePtr array_operand(const config::NumberArray& a, const std::string& name) {
  if (a.shape.rank() == 0) return nullptr;
  auto v = std::make_shared<Variable>(name, a.shape, DType::float32, false);
  v->assign(a.values);
  return v;
}

}  // namespace

Rescaling::Rescaling(float scale, RescalingOptions options)
    : Rescaling(number(scale), number(options.offset), LayerOptions{options.name, options.trainable}) {}

Rescaling::Rescaling(std::vector<float> channel_scales, RescalingOptions options)
    : Rescaling(config::NumberArray{Shape{std::int64_t(channel_scales.size())}, channel_scales}, number(options.offset),
                LayerOptions{options.name, options.trainable}) {}

Rescaling::Rescaling(config::NumberArray scale, config::NumberArray offset, LayerOptions options)
    : LayerBase(options.name, "rescaling", options.trainable), scale_(std::move(scale)), offset_(std::move(offset)) {
  for (const auto* a : {&scale_, &offset_})
    if (a->values.empty()) throw std::invalid_argument(fmt::format("Rescaling '{}': scale and offset must not be empty", name()));
  scale_values_ = array_operand(scale_, name() + "/scale");
  offset_values_ = array_operand(offset_, name() + "/offset");
}

Tensor Rescaling::call(const Tensor& inputs) {
  Tensor x = inputs.dtype() == DType::float32 ? inputs : ops::cast(inputs, DType::float32);
  x = scale_values_ ? ops::multiply(x, scale_values_) : ops::multiply(x, scale_.values[0]);
  if (offset_values_) return ops::add(x, offset_values_);
  return offset_.values[0] != 0.f ? ops::add(x, offset_.values[0]) : x;
}

Json Rescaling::get_config() const {
  Json c = Layer::get_config();
  c["scale"] = config::number_array_to_json(scale_);
  c["offset"] = config::number_array_to_json(offset_);
  return c;
}

LayerPtr Rescaling::from_config(const Json& c) {
  config::check_keys(c, "Rescaling", {"scale", "offset"});
  if (!c.contains("scale") || c.at("scale").is_null()) throw std::invalid_argument("Rescaling: 'scale' must be given");
  const config::NumberArray scale = config::number_array(c.at("scale"), "Rescaling: 'scale'");
  const config::NumberArray offset = c.contains("offset") && !c.at("offset").is_null()
                                         ? config::number_array(c.at("offset"), "Rescaling: 'offset'")
                                         : number(0.f);
  return std::make_shared<Rescaling>(scale, offset, LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
