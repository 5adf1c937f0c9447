#include "layers/dropout.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Dropout::Dropout(float rate, DropoutOptions options)
    : LayerBase(options.name, "dropout", options.trainable), rate_(rate), seed_(options.seed), noise_shape_(options.noise_shape) {
  if (!(rate_ >= 0.f && rate_ < 1.f))
    throw std::invalid_argument(fmt::format("Dropout '{}': rate must be in [0, 1), got {}", name(), rate_));
}

Tensor Dropout::call(const Tensor& inputs) {
  return rate_ > 0.f ? ops::dropout(inputs, rate_, seed_.value(), noise_shape_) : inputs;
}

Json Dropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = seed_.config();
  if (noise_shape_.empty()) {
    c["noise_shape"] = nullptr;
  } else {
    Json dims = Json::array();
    for (auto d : noise_shape_) dims.push_back(d < 0 ? Json(nullptr) : Json(d));
    c["noise_shape"] = dims;
  }
  return c;
}

LayerPtr Dropout::from_config(const Json& c) {
  config::check_keys(c, "Dropout", {"rate", "seed", "noise_shape"});
  if (!c.contains("rate") || !c.at("rate").is_number()) throw std::invalid_argument("Dropout: 'rate' must be a number");
  DropoutOptions o;
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  o.seed = config::seed(c);
  if (c.contains("noise_shape") && c.at("noise_shape").is_array())
    for (const auto& d : c.at("noise_shape")) o.noise_shape.push_back(d.is_number_integer() ? d.get<std::int64_t>() : -1);
  return std::make_shared<Dropout>(c.at("rate").get<float>(), o);
}

SpatialDropout::SpatialDropout(int rank, float rate, const DropoutOptions& options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), rate_(rate), seed_(options.seed) {
  if (!(rate_ >= 0.f && rate_ < 1.f))
    throw std::invalid_argument(fmt::format("{}: rate must be in [0, 1), got {}", name(), rate_));
}

Tensor SpatialDropout::call(const Tensor& inputs) {
  if (inputs.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 2, inputs.shape().to_string()));
  // One draw per sample and channel, shared over the spatial axes.
  std::vector<std::int64_t> noise_shape(std::size_t(rank_ + 2), 1);
  noise_shape.front() = -1;
  noise_shape.back() = -1;
  return rate_ > 0.f ? ops::dropout(inputs, rate_, seed_.value(), noise_shape) : inputs;
}

Json SpatialDropout::get_config() const {
  Json c = Layer::get_config();
  c["rate"] = rate_;
  c["seed"] = seed_.config();
  if (rank_ >= 2) c["data_format"] = "channels_last";
  return c;
}

DropoutOptions SpatialDropout::options_from_config(const Json& c, const std::string& cls, float& rate) {
  config::check_keys(c, cls, {"rate", "seed", "data_format"});
  config::require_channels_last(c, cls);
  if (!c.contains("rate") || !c.at("rate").is_number()) throw std::invalid_argument(fmt::format("{}: 'rate' must be a number", cls));
  rate = c.at("rate").get<float>();
  DropoutOptions o;
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  o.seed = config::seed(c);
  return o;
}

}  // namespace strata
