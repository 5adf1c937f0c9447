#include "layers/bidirectional.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/registry.h"

namespace strata {

namespace {

// A recurrent layer rebuilt from `config` with a new name and direction.
std::shared_ptr<Recurrent> clone_recurrent(const std::string& class_name, Json config, const std::string& name, bool go_backwards) {
  config["name"] = name;
  config["go_backwards"] = go_backwards;
  auto layer = std::dynamic_pointer_cast<Recurrent>(layer_from_config(class_name, config));
  if (!layer) throw std::invalid_argument(fmt::format("Bidirectional wraps SimpleRNN, LSTM or GRU, not {}", class_name));
  return layer;
}

std::string without_prefix(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}

}  // namespace

Bidirectional::Bidirectional(const std::shared_ptr<Recurrent>& layer, BidirectionalOptions options, const std::shared_ptr<Recurrent>& backward)
    : LayerBase(options.name, "bidirectional", options.trainable), merge_mode_(options.merge_mode) {
  if (!layer) throw std::invalid_argument("Bidirectional: no layer to wrap");
  if (merge_mode_ != "concat" && merge_mode_ != "sum" && merge_mode_ != "mul" && merge_mode_ != "ave" && merge_mode_ != "none")
    throw std::invalid_argument(
        fmt::format("{}: merge_mode must be \"concat\", \"sum\", \"mul\", \"ave\" or \"none\", got \"{}\"", name(), merge_mode_));
  const Json config = layer->full_config();
  const std::string base = without_prefix(layer->name(), "forward_");
  forward_ = clone_recurrent(layer->class_name(), config, "forward_" + base, layer->options().go_backwards);
  backward_ = backward ? backward : clone_recurrent(layer->class_name(), config, "backward_" + base, !layer->options().go_backwards);
  if (forward_->options().return_sequences != backward_->options().return_sequences)
    throw std::invalid_argument(fmt::format("{}: the forward and backward layers differ in return_sequences", name()));
  if (forward_->options().return_state != backward_->options().return_state)
    throw std::invalid_argument(fmt::format("{}: the forward and backward layers differ in return_state", name()));
  backward_->set_outputs_in_input_order(true);
  forward_->set_zero_output_for_mask(forward_->options().return_sequences);
  backward_->set_zero_output_for_mask(backward_->options().return_sequences);
}

void Bidirectional::build_multi(const std::vector<Shape>& shapes) {
  const std::size_t states = std::size_t(forward_->state_count());
  if (shapes.size() > 1 && shapes.size() != 1 + 2 * states)
    throw std::invalid_argument(fmt::format("takes {} initial states (forward, then backward), got {}", 2 * states, shapes.size() - 1));
}

std::vector<Tensor> Bidirectional::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  call_flags(call_arguments);
  std::vector<Tensor> forward_inputs = {inputs[0]}, backward_inputs = {inputs[0]};
  const std::size_t states = std::size_t(forward_->state_count());
  if (inputs.size() > 1) {
    forward_inputs.insert(forward_inputs.end(), inputs.begin() + 1, inputs.begin() + 1 + std::ptrdiff_t(states));
    backward_inputs.insert(backward_inputs.end(), inputs.begin() + 1 + std::ptrdiff_t(states), inputs.end());
  }
  const std::vector<Tensor> f = forward_->trace_all(forward_inputs), b = backward_->trace_all(backward_inputs);
  if (weights().empty()) {
    track_weights(forward_->weights());
    track_weights(backward_->weights());
  }
  std::vector<Tensor> out;
  if (merge_mode_ == "concat") out = {ops::concatenate({f[0], b[0]}, -1)};
  else if (merge_mode_ == "sum") out = {ops::add(f[0], b[0])};
  else if (merge_mode_ == "mul") out = {ops::multiply(f[0], b[0])};
  else if (merge_mode_ == "ave") out = {ops::multiply(ops::add(f[0], b[0]), 0.5f)};
  else out = {f[0], b[0]};
  out.insert(out.end(), f.begin() + 1, f.end());
  out.insert(out.end(), b.begin() + 1, b.end());
  return out;
}

std::vector<Tensor> Bidirectional::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  if (forward_->options().return_sequences) {
    masks[0] = get_keras_mask(inputs[0]);
    if (merge_mode_ == "none") masks[1] = masks[0];
  }
  return masks;
}

Json Bidirectional::call_node(const std::vector<Json>& tensors, const Json&) const {
  Json kwargs = Json::object();
  if (tensors.size() > 1) kwargs["initial_state"] = Json(std::vector<Json>(tensors.begin() + 1, tensors.end()));
  return {{"args", Json::array({tensors[0]})}, {"kwargs", kwargs}};
}

std::vector<std::pair<VariablePtr, Regularizer>> Bidirectional::weight_regularizers() const {
  auto out = forward_->weight_regularizers();
  for (auto& w : backward_->weight_regularizers()) out.push_back(std::move(w));
  return out;
}

Json Bidirectional::get_config() const {
  Json c = Layer::get_config();
  c["merge_mode"] = merge_mode_ == "none" ? Json(nullptr) : Json(merge_mode_);
  Json forward = forward_->full_config();
  forward["name"] = without_prefix(forward_->name(), "forward_");
  c["layer"] = {{"module", "keras.layers"}, {"class_name", forward_->class_name()}, {"config", forward}, {"registered_name", nullptr}};
  c["backward_layer"] = {{"module", "keras.layers"}, {"class_name", backward_->class_name()}, {"config", backward_->full_config()},
                         {"registered_name", nullptr}};
  return c;
}

LayerPtr Bidirectional::from_config(const Json& c) {
  config::check_keys(c, "Bidirectional", {"merge_mode", "layer", "backward_layer", "weights"});
  if (!c.contains("layer")) throw std::invalid_argument("Bidirectional: 'layer' is missing");
  auto layer = std::dynamic_pointer_cast<Recurrent>(layer_from_json(c.at("layer")));
  if (!layer) throw std::invalid_argument(fmt::format("Bidirectional wraps SimpleRNN, LSTM or GRU, not {}", c.at("layer").value("class_name", "?")));
  std::shared_ptr<Recurrent> backward;
  if (c.contains("backward_layer") && !c.at("backward_layer").is_null()) {
    backward = std::dynamic_pointer_cast<Recurrent>(layer_from_json(c.at("backward_layer")));
    if (!backward) throw std::invalid_argument("Bidirectional: 'backward_layer' must be a SimpleRNN, LSTM or GRU");
  }
  BidirectionalOptions o;
  if (c.contains("merge_mode")) {
    if (c.at("merge_mode").is_null()) o.merge_mode = "none";
    else if (c.at("merge_mode").is_string()) o.merge_mode = c.at("merge_mode").get<std::string>();
    else throw std::invalid_argument(fmt::format("Bidirectional: merge_mode must be a string or null, got {}", c.at("merge_mode").dump()));
  }
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Bidirectional>(layer, o, backward);
}

}  // namespace strata
