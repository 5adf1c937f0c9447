#include "layers/rescaling.h"

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Rescaling::Rescaling(float scale, RescalingOptions options)
    : LayerBase(options.name, "rescaling", options.trainable), scale_(scale), offset_(options.offset) {}

Tensor Rescaling::call(const Tensor& inputs) {
  Tensor x = inputs.dtype() == DType::float32 ? inputs : ops::cast(inputs, DType::float32);
  x = ops::multiply(x, scale_);
  return offset_ != 0.f ? ops::add(x, offset_) : x;
}

Json Rescaling::get_config() const {
  Json c = Layer::get_config();
  c["scale"] = scale_;
  c["offset"] = offset_;
  return c;
}

LayerPtr Rescaling::from_config(const Json& c) {
  config::check_keys(c, "Rescaling", {"scale", "offset"});
  if (!c.contains("scale") || !c.at("scale").is_number())
    throw std::invalid_argument("Rescaling: 'scale' must be a number (per-channel lists are not supported)");
  RescalingOptions o{.name = config::name(c), .trainable = config::trainable(c)};
  if (c.contains("offset") && c.at("offset").is_number()) o.offset = c.at("offset").get<float>();
  return std::make_shared<Rescaling>(c.at("scale").get<float>(), o);
}

}  // namespace strata
