#include "layers/convnext_layers.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

LayerScale::LayerScale(float init_values, std::int64_t projection_dim, LayerOptions options)
    : LayerBase(options.name, "layer_scale", options.trainable), init_values_(init_values), projection_dim_(projection_dim) {
  if (projection_dim_ < 1) throw std::invalid_argument(fmt::format("LayerScale: projection_dim must be positive, got {}", projection_dim_));
}

void LayerScale::build(const Shape& input_shape) {
  if (input_shape[input_shape.rank() - 1] != projection_dim_)
    throw std::invalid_argument(fmt::format("projection_dim {} does not match the input's last dimension {}", projection_dim_,
                                            input_shape[input_shape.rank() - 1]));
  gamma_ = add_weight("gamma", {projection_dim_}, Json{{"class_name", "Constant"}, {"config", {{"value", init_values_}}}});
}

Tensor LayerScale::call(const Tensor& inputs) { return ops::multiply(inputs, gamma_); }

Json LayerScale::get_config() const {
  Json c = Layer::get_config();
  c["init_values"] = init_values_;
  c["projection_dim"] = projection_dim_;
  return c;
}

LayerPtr LayerScale::from_config(const Json& c) {
  config::check_keys(c, "LayerScale", {"init_values", "projection_dim"});
  if (!c.contains("projection_dim") || !c.at("projection_dim").is_number_integer())
    throw std::invalid_argument("LayerScale: 'projection_dim' must be an integer");
  return std::make_shared<LayerScale>(config::number(c, "init_values", "LayerScale"), c.at("projection_dim").get<std::int64_t>(),
                                      LayerOptions{config::name(c), config::trainable(c)});
}

StochasticDepth::StochasticDepth(float drop_path_rate, LayerOptions options)
    : LayerBase(options.name, "stochastic_depth", options.trainable), rate_(drop_path_rate), seed_(next_random_seed()) {
  if (!(rate_ >= 0.f && rate_ < 1.f))
    throw std::invalid_argument(fmt::format("StochasticDepth: drop_path_rate must be in [0, 1), got {}", rate_));
}

Tensor StochasticDepth::call(const Tensor& inputs) {
  if (rate_ == 0.f) return inputs;
  // One draw per sample: dropout whose noise is shaped (batch, 1, ..., 1).
  std::vector<std::int64_t> per_sample(std::size_t(inputs.rank()), 1);
  per_sample[0] = -1;
  return ops::dropout(inputs, rate_, seed_, per_sample);
}

Json StochasticDepth::get_config() const {
  Json c = Layer::get_config();
  c["drop_path_rate"] = rate_;
  return c;
}

LayerPtr StochasticDepth::from_config(const Json& c) {
  config::check_keys(c, "StochasticDepth", {"drop_path_rate"});
  return std::make_shared<StochasticDepth>(config::number(c, "drop_path_rate", "StochasticDepth"), LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
