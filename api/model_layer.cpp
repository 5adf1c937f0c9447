#include "api/model_layer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace strata {

ModelLayer::ModelLayer(Model& model) : LayerBase(model.name(), "model"), class_name_(model.class_name()) {
  inputs_ = model.inputs();
  outputs_ = model.outputs();
  layers_ = model.layers();
  config_ = model.get_config();
  std::vector<VariablePtr> weights;
  for (const auto& w : model.weights())
    if (std::find(weights.begin(), weights.end(), w) == weights.end()) weights.push_back(w);
  track_weights(weights);
}

LayerPtr ModelLayer::from_config(const std::string& class_name, const Json& config) {
  auto model = model_from_json({{"class_name", class_name}, {"config", config}});
  return std::make_shared<ModelLayer>(*model);
}

void ModelLayer::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != inputs_.size())
    throw std::invalid_argument(fmt::format("model '{}' takes {} inputs, got {}", name(), inputs_.size(), shapes.size()));
}

std::vector<Tensor> ModelLayer::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  call_flags(call_arguments);
  if (inputs.size() != inputs_.size())
    throw std::invalid_argument(fmt::format("model '{}' takes {} inputs, got {}", name(), inputs_.size(), inputs.size()));
  if (class_name_ == "Sequential") return retrace_chain(layers_, inputs[0]);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Shape want = inputs_[i].shape(), got = inputs[i].shape();
    bool compatible = want.rank() == got.rank();
    for (int d = 1; compatible && d < want.rank(); ++d) compatible = want[d] < 0 || got[d] < 0 || want[d] == got[d];
    if (!compatible)
      throw std::invalid_argument(fmt::format("model '{}': input {} expects shape {}, got {}", name(), i, want.to_string(), got.to_string()));
  }
  return retrace_calls(inputs_, outputs_, layers_, inputs, name());
}

std::vector<Tensor> retrace_chain(const std::vector<LayerPtr>& layers, const Tensor& input) {
  // A Sequential is its chain of layers (it traces without recording calls).
  Tensor t = input;
  for (const auto& layer : layers) t = layer->trace(t);
  return {t};
}

std::vector<Tensor> retrace_calls(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const std::vector<LayerPtr>& layers,
                                  const std::vector<Tensor>& new_inputs, const std::string& model_name) {
  // Each value of the old graph that a layer reads, as a tensor of the new one.
  std::map<ValueId, Tensor> now;
  for (std::size_t i = 0; i < inputs.size() && i < new_inputs.size(); ++i) now[inputs[i].id()] = new_inputs[i];
  const Graph& old = inputs[0].graph();
  for (const ModuleCall& call : old.calls()) {
    if (call.inputs.empty()) continue;  // an InputLayer
    const bool ours = std::any_of(layers.begin(), layers.end(), [&](const LayerPtr& l) { return l.get() == call.module.get(); });
    if (!ours) continue;
    std::vector<Tensor> args;
    for (ValueId v : call.inputs) {
      auto it = now.find(v);
      if (it == now.end()) break;  // a call on tensors the model does not compute from its inputs
      args.push_back(it->second);
    }
    if (args.size() != call.inputs.size()) continue;
    auto* layer = static_cast<Layer*>(call.module.get());
    const std::vector<Tensor> outs = layer->trace_all(args, call.arguments.empty() ? Json::object() : Json::parse(call.arguments));
    for (std::size_t k = 0; k < outs.size() && k < call.outputs.size(); ++k) now[call.outputs[k]] = outs[k];
  }
  std::vector<Tensor> result;
  for (const Tensor& o : outputs) {
    auto it = now.find(o.id());
    if (it == now.end()) throw std::logic_error(fmt::format("model '{}': output not reached when traced again", model_name));
    result.push_back(it->second);
  }
  return result;
}

SavedVariableGroups ModelLayer::saved_variable_groups() const {
  SavedVariableGroups groups;
  const auto keys = keras3_layer_keys(layers_);
  for (std::size_t i = 0; i < layers_.size(); ++i)
    for (auto& [path, vars] : layers_[i]->saved_variable_groups()) groups.emplace_back("layers/" + keys[i] + "/" + path, vars);
  return groups;
}

std::string ModelLayer::saved_weight_name(const Variable& weight) const { return name() + "/" + weight.name(); }

std::string ModelLayer::keras_module() const { return class_name_ == "Sequential" ? "keras" : "keras.src.models.functional"; }

std::vector<std::pair<VariablePtr, Regularizer>> ModelLayer::weight_regularizers() const {
  std::vector<std::pair<VariablePtr, Regularizer>> out;
  for (const LayerPtr& layer : layers_)
    for (auto& w : layer->weight_regularizers()) out.push_back(std::move(w));
  return out;
}

}  // namespace strata
