#include "layers/time_distributed.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/registry.h"

namespace strata {

TimeDistributed::TimeDistributed(LayerPtr layer, LayerOptions options)
    : LayerBase(options.name, "time_distributed", options.trainable), layer_(std::move(layer)) {
  if (!layer_) throw std::invalid_argument("TimeDistributed: no layer to wrap");
}

Tensor TimeDistributed::call(const Tensor& x) {
  const Shape s = x.shape();  // a copy: tracing the inner layer grows the graph that x.shape() points into
  if (s.rank() < 3) throw std::invalid_argument(fmt::format("TimeDistributed expects (batch, steps, ...), got {}", s.to_string()));
  std::vector<std::int64_t> folded{-1};
  for (int i = 2; i < s.rank(); ++i) folded.push_back(s[i]);
  // Keras runs the inner layer's call() on each step, so its activity_regularizer adds nothing.
  const Tensor y = layer_->trace_all({ops::reshape(x, folded)}, Json::object(), false).at(0);
  if (weights().empty()) track_weights(layer_->weights());
  std::vector<std::int64_t> unfolded{-1, s[1]};
  for (int i = 1; i < y.rank(); ++i) unfolded.push_back(y.shape()[i]);
  // Steps known only when the model runs (Input((None, ...))) come back from x's shape.
  return ops::reshape_like(y, unfolded, x);
}

Json TimeDistributed::get_config() const {
  Json c = Layer::get_config();
  c["layer"] = {{"module", "keras.layers"}, {"class_name", layer_->class_name()}, {"config", layer_->full_config()}, {"registered_name", nullptr}};
  return c;
}

LayerPtr TimeDistributed::from_config(const Json& c) {
  config::check_keys(c, "TimeDistributed", {"layer"});
  if (!c.contains("layer")) throw std::invalid_argument("TimeDistributed: 'layer' is missing");
  return std::make_shared<TimeDistributed>(layer_from_json(c.at("layer")), LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
