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
  if (merge_mode_ != "concat" && merge_mode_ != "sum" && merge_mode_ != "mul" && merge_mode_ != "ave")
    throw std::invalid_argument(fmt::format("{}: merge_mode must be \"concat\", \"sum\", \"mul\" or \"ave\", got \"{}\"", name(), merge_mode_));
  const Json config = layer->get_config();
  const std::string base = without_prefix(layer->name(), "forward_");
  forward_ = clone_recurrent(layer->class_name(), config, "forward_" + base, layer->options().go_backwards);
  backward_ = backward ? backward : clone_recurrent(layer->class_name(), config, "backward_" + base, !layer->options().go_backwards);
  if (forward_->options().return_sequences != backward_->options().return_sequences)
    throw std::invalid_argument(fmt::format("{}: the forward and backward layers differ in return_sequences", name()));
  backward_->set_outputs_in_input_order(true);
}

void Bidirectional::build(const Shape&) {}

Tensor Bidirectional::call(const Tensor& inputs) {
  const Tensor f = forward_->trace(inputs), b = backward_->trace(inputs);
  if (weights().empty()) {
    track_weights(forward_->weights());
    track_weights(backward_->weights());
  }
  if (merge_mode_ == "concat") return ops::concatenate({f, b}, -1);
  if (merge_mode_ == "sum") return ops::add(f, b);
  if (merge_mode_ == "mul") return ops::multiply(f, b);
  return ops::multiply(ops::add(f, b), 0.5f);
}

Json Bidirectional::get_config() const {
  Json c = Layer::get_config();
  c["merge_mode"] = merge_mode_;
  Json forward = forward_->get_config();
  forward["name"] = without_prefix(forward_->name(), "forward_");
  c["layer"] = {{"module", "keras.layers"}, {"class_name", forward_->class_name()}, {"config", forward}, {"registered_name", nullptr}};
  c["backward_layer"] = {{"module", "keras.layers"}, {"class_name", backward_->class_name()}, {"config", backward_->get_config()},
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
    if (c.at("merge_mode").is_null()) throw std::invalid_argument("Bidirectional: merge_mode None (two outputs) is not supported; use concat, sum, mul or ave");
    o.merge_mode = c.at("merge_mode").get<std::string>();
  }
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Bidirectional>(layer, o, backward);
}

}  // namespace strata
