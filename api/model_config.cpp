// Models to and from Keras's model config JSON: Sequential and Functional, in the node formats of Keras 3
// (args with __keras_tensor__ and keras_history) and Keras 2 ([[name, node, tensor, kwargs]]).
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "api/model.h"
#include "layers/input_layer.h"
#include "layers/keras_op.h"
#include "layers/registry.h"

namespace strata {

namespace {

Json serialize_layer(const Layer& layer) {
  // Keras registers Functional under its own name; every other class is found through its module.
  const Json registered = layer.class_name() == "Functional" ? Json("Functional") : Json(nullptr);
  return {{"module", layer.keras_module()}, {"class_name", layer.class_name()}, {"config", layer.full_config()}, {"registered_name", registered}};
}

// A nested functional model's node 0 is the one its own construction made: Keras counts its calls from 1.
int node_offset(const Layer& layer) { return layer.class_name() == "Functional" || layer.class_name() == "Model" ? 1 : 0; }

// (layer name, node index, tensor index): how Keras names a tensor in a functional config.
using TensorKey = std::tuple<std::string, int, int>;

Json tensor_key_json(const TensorKey& h) { return Json::array({std::get<0>(h), std::get<1>(h), std::get<2>(h)}); }

// [name, node, tensor] or a list of them; Keras 3 writes one input unwrapped.
std::vector<TensorKey> read_endpoints(const Json& j, const std::string& what) {
  std::vector<TensorKey> out;
  auto one = [&](const Json& e) {
    if (!e.is_array() || e.size() < 3 || !e[0].is_string() || !e[1].is_number_integer() || !e[2].is_number_integer())
      throw std::invalid_argument(fmt::format("model config: '{}' entry {} is not [layer name, node index, tensor index]", what, e.dump()));
    out.emplace_back(e[0].get<std::string>(), e[1].get<int>(), e[2].get<int>());
  };
  if (!j.is_array() || j.empty()) throw std::invalid_argument(fmt::format("model config: '{}' must be a non-empty list", what));
  if (j[0].is_string()) one(j);
  else
    for (const Json& e : j) one(e);
  return out;
}

// Calls `visit` with the keras_history ([layer, node, tensor]) of every serialized Keras tensor in `v`,
// through lists and (when `into_objects`) the values of objects, except under "mask" keys.
void for_each_keras_tensor(const Json& v, bool into_objects, const std::function<void(const Json&)>& visit) {
  if (v.is_object() && v.value("class_name", "") == "__keras_tensor__") {
    visit(v.at("config").at("keras_history"));
  } else if (v.is_array() || (into_objects && v.is_object())) {
    for (const auto& [key, e] : v.items())
      if (key != "mask") for_each_keras_tensor(e, into_objects, visit);
  }
}

// One inbound node of a layer, in either Keras format: the tensors it feeds (positional ones, then the
// layer's tensor keywords in its order) and its other keyword arguments.
struct InboundNode {
  std::vector<TensorKey> tensors;
  Json arguments = Json::object();
};

InboundNode node_inputs(const Json& node, const Layer& layer) {
  InboundNode out;
  if (node.is_object()) {  // Keras 3: {"args": [...], "kwargs": {...}}
    auto collect = [&](const Json& v) {
      for_each_keras_tensor(v, false, [&](const Json& h) {
        out.tensors.emplace_back(h.at(0).get<std::string>(), h.at(1).get<int>(), h.at(2).get<int>());
      });
    };
    collect(node.value("args", Json::array()));
    const Json kwargs = node.value("kwargs", Json::object());
    const std::vector<std::string> keywords = layer.tensor_keywords();
    for (const std::string& k : keywords)
      if (kwargs.contains(k)) collect(kwargs.at(k));
    for (const auto& [key, value] : kwargs.items()) {
      // Masks travel with the tensors here, as in Keras at run time: the explicit one is redundant.
      if (key == "mask" || std::find(keywords.begin(), keywords.end(), key) != keywords.end()) continue;
      bool holds_tensor = false;
      for_each_keras_tensor(value, false, [&](const Json&) { holds_tensor = true; });
      if (holds_tensor)
        throw std::invalid_argument(fmt::format("model config: layer '{}' ({}): a tensor as call argument '{}' is not supported", layer.name(),
                                                layer.class_name(), key));
      if (!value.is_null()) out.arguments[key] = value;
    }
  } else if (node.is_array()) {  // Keras 2: [[name, node, tensor, kwargs], ...]
    for (const Json& e : node) {
      if (!e.is_array() || e.size() < 3)
        throw std::invalid_argument(fmt::format("model config: layer '{}': inbound node entry {} is malformed", layer.name(), e.dump()));
      out.tensors.emplace_back(e[0].get<std::string>(), e[1].get<int>(), e[2].get<int>());
    }
  } else {
    throw std::invalid_argument(fmt::format("model config: layer '{}': inbound node {} is malformed", layer.name(), node.dump()));
  }
  return out;
}

// A layer entry's config with Keras 2's batch_input_shape carried into an InputLayer of its own.
LayerPtr input_layer_from(const Json& layer_config, const std::string& model) {
  Shape batch_shape;
  if (layer_config.contains("batch_input_shape")) batch_shape = config::shape(layer_config.at("batch_input_shape"), "batch_input_shape");
  else if (layer_config.contains("batch_shape")) batch_shape = config::shape(layer_config.at("batch_shape"), "batch_shape");
  else return nullptr;
  if (batch_shape.rank() < 1) throw std::invalid_argument(fmt::format("model config: model '{}': the input shape has no batch dimension", model));
  Shape shape;
  for (int i = 1; i < batch_shape.rank(); ++i) shape.push_back(batch_shape[i]);
  return std::make_shared<InputLayer>(shape);
}

std::unique_ptr<Model> sequential_from_config(const Json& c) {
  // Keras 2.0-2.2 wrote the layer list directly; later versions {"name": ..., "layers": [...]}.
  const Json& layers = c.is_array() ? c : c.at("layers");
  const std::string name = c.is_object() ? c.value("name", std::string()) : std::string();
  auto model = std::make_unique<Sequential>(std::vector<LayerRef>{}, name);
  bool first = true;
  for (const Json& entry : layers) {
    const std::string cls = entry.value("class_name", std::string());
    const Json& lc = entry.contains("config") ? entry.at("config") : Json::object();
    if (first && cls != "InputLayer")
      if (LayerPtr input = input_layer_from(lc, name)) model->add(input);
    first = false;
    if (cls == "InputLayer") {
      model->add(layer_from_json(entry));
      continue;
    }
    // batch_input_shape was consumed above; the layer's own reader does not know it.
    Json own = lc;
    own.erase("batch_input_shape");
    own.erase("batch_shape");
    model->add(layer_from_config(cls, own));
  }
  return model;
}

// The layers the model's outputs are computed from, following tensors but not "mask" arguments. Keras
// also records what computes masks (ops such as NotEqual and Any, and merge layers over masks) as nodes
// whose outputs feed only "mask" arguments: those are left out.
std::set<std::string> layers_feeding_outputs(const Json& c) {
  std::map<std::string, const Json*> entries;
  for (const Json& entry : c.at("layers")) {
    const std::string name = entry.contains("name") ? entry.at("name").get<std::string>() : entry.at("config").value("name", std::string());
    entries[name] = &entry;
  }
  std::set<std::string> reached;
  std::vector<std::string> todo;
  for (const TensorKey& h : read_endpoints(c.at("output_layers"), "output_layers")) todo.push_back(std::get<0>(h));
  auto collect = [&](const Json& v) { for_each_keras_tensor(v, true, [&](const Json& h) { todo.push_back(h.at(0).get<std::string>()); }); };
  while (!todo.empty()) {
    const std::string name = todo.back();
    todo.pop_back();
    if (!reached.insert(name).second || !entries.count(name)) continue;
    for (const Json& node : entries[name]->value("inbound_nodes", Json::array())) {
      if (node.is_array())
        for (const Json& e : KerasOp::tf_node_entries(node)) {
          if (e.is_array() && !e.empty() && e[0].is_string()) todo.push_back(e[0].get<std::string>());
          // Keras 2 keywords may name tensors too ([layer, node, tensor]: a TFOpLambda's second operand).
          if (e.is_array() && e.size() > 3 && e[3].is_object())
            for (const auto& [key, v] : e[3].items())
              if (v.is_array() && v.size() == 3 && v[0].is_string() && v[1].is_number_integer()) todo.push_back(v[0].get<std::string>());
        }
      if (node.is_object()) collect(node);
    }
  }
  return reached;
}

std::unique_ptr<Model> functional_from_config(const Json& c) {
  const std::string model_name = c.value("name", std::string());
  const std::set<std::string> feeding = layers_feeding_outputs(c);
  GraphScope scope(std::make_shared<Graph>());
  std::map<TensorKey, Tensor> tensors;
  std::map<std::string, int> calls;  // nodes made so far per layer
  struct Pending {
    const Json* entry;
    LayerPtr layer;
    std::size_t next_node = 0;
  };
  std::vector<Pending> pending;
  for (const Json& entry : c.at("layers")) {
    const std::string cls = entry.value("class_name", std::string());
    const std::string name = entry.contains("name") ? entry.at("name").get<std::string>() : entry.at("config").value("name", std::string());
    // A mask computation: the layers that made the mask give it to their outputs themselves.
    if (cls != "InputLayer" && !feeding.count(name)) continue;
    LayerPtr layer = KerasOp::is_op_entry(entry)      ? KerasOp::from_entry(entry)
                     : KerasOp::is_tf_op_entry(entry) ? KerasOp::from_tf_entry(entry)
                                                      : layer_from_json(entry);
    if (cls == "InputLayer") {
      tensors[{name, 0, 0}] = std::static_pointer_cast<InputLayer>(layer)->output();
      continue;
    }
    pending.push_back({&entry, layer});
  }
  // Layers are listed in a topological order, but a shared layer's later nodes may wait for others.
  bool progress = true;
  while (progress) {
    progress = false;
    for (Pending& p : pending) {
      const Json& nodes = p.entry->value("inbound_nodes", Json::array());
      while (p.next_node < nodes.size()) {
        InboundNode inbound;
        if (const auto* op = dynamic_cast<const KerasOp*>(p.layer.get())) {
          if (nodes[p.next_node].is_array()) {  // a TFOpLambda's node
            auto [refs, arguments] = KerasOp::tf_node(nodes[p.next_node], *op);
            for (const Json& r : refs) inbound.tensors.emplace_back(r[0].get<std::string>(), r[1].get<int>(), r[2].get<int>());
            inbound.arguments = arguments;
          } else {
            inbound = node_inputs(nodes[p.next_node], *p.layer);
            inbound.arguments = KerasOp::call_arguments_of(nodes[p.next_node], p.layer->name());
          }
        } else {
          inbound = node_inputs(nodes[p.next_node], *p.layer);
        }
        std::vector<Tensor> args;
        for (const TensorKey& h : inbound.tensors) {
          auto it = tensors.find(h);
          if (it == tensors.end()) break;
          args.push_back(it->second);
        }
        if (args.size() != inbound.tensors.size()) break;
        if (args.empty()) throw std::invalid_argument(fmt::format("model config: layer '{}': an inbound node with no inputs", p.layer->name()));
        const std::vector<Tensor> outs = p.layer->apply(args, inbound.arguments);
        const int node = calls[p.layer->name()]++ + node_offset(*p.layer);
        for (std::size_t i = 0; i < outs.size(); ++i) tensors[{p.layer->name(), node, int(i)}] = outs[i];
        ++p.next_node;
        progress = true;
      }
    }
  }
  auto endpoint = [&](const TensorKey& h, const char* what) {
    auto it = tensors.find(h);
    if (it == tensors.end())
      throw std::invalid_argument(fmt::format("model config: {} '{}' (node {}, tensor {}) is not produced by any layer", what, std::get<0>(h),
                                              std::get<1>(h), std::get<2>(h)));
    return it->second;
  };
  std::vector<Tensor> inputs, outputs;
  for (const TensorKey& h : read_endpoints(c.at("input_layers"), "input_layers")) inputs.push_back(endpoint(h, "input"));
  for (const TensorKey& h : read_endpoints(c.at("output_layers"), "output_layers")) outputs.push_back(endpoint(h, "output"));
  return std::make_unique<Model>(inputs, outputs, model_name);
}

}  // namespace

Json Model::get_config() {
  (void)inputs();
  Json c = {{"name", name_}, {"trainable", true}};
  if (class_name() == "Sequential") {
    c["dtype"] = config::dtype_policy();
    Json layers = Json::array();
    for (const auto& in : input_layers_) layers.push_back(serialize_layer(*in));
    for (const auto& l : layers_) layers.push_back(serialize_layer(*l));
    c["layers"] = layers;
    if (!inputs_.empty()) c["build_input_shape"] = config::shape_to_json(inputs_[0].shape());
    return c;
  }
  // Functional: each layer with the tensors each of its calls (nodes) received.
  const Graph& g = inputs_[0].graph();
  std::map<const void*, const Layer*> members;
  for (const auto& l : layers_) members[l.get()] = l.get();
  std::map<ValueId, TensorKey> produced;
  std::map<const Layer*, Json> nodes;
  std::map<const Layer*, int> node_count;
  for (const ModuleCall& call : g.calls()) {
    auto it = members.find(call.module.get());
    if (it == members.end()) continue;
    const Layer* layer = it->second;
    if (!call.inputs.empty()) {
      std::vector<Json> args;
      for (ValueId v : call.inputs) {
        auto p = produced.find(v);
        if (p == produced.end()) throw std::logic_error(fmt::format("model '{}': layer '{}' reads a tensor no layer of the model made", name_, layer->name()));
        const auto& value = g.value(v);
        args.push_back({{"class_name", "__keras_tensor__"},
                        {"config", {{"shape", config::shape_to_json(value.shape)}, {"dtype", std::string(dtype_name(value.dtype))},
                                    {"keras_history", tensor_key_json(p->second)}}}});
      }
      nodes[layer].push_back(layer->call_node(args, call.arguments.empty() ? Json::object() : Json::parse(call.arguments)));
    }
    const int node = node_count[layer]++ + node_offset(*layer);
    for (std::size_t i = 0; i < call.outputs.size(); ++i) produced[call.outputs[i]] = {layer->name(), node, int(i)};
  }
  Json layers = Json::array();
  for (const auto& l : layers_) {
    Json e = serialize_layer(*l);
    e["name"] = l->name();
    e["inbound_nodes"] = nodes.count(l.get()) ? nodes[l.get()] : Json::array();
    layers.push_back(e);
  }
  c["layers"] = layers;
  auto endpoints = [&](const std::vector<Tensor>& ts) {
    Json list = Json::array();
    for (const Tensor& t : ts) list.push_back(tensor_key_json(produced.at(t.id())));
    return list.size() == 1 ? list[0] : list;
  };
  c["input_layers"] = endpoints(inputs_);
  c["output_layers"] = endpoints(outputs_);
  return c;
}

Json Model::to_json() {
  // As Keras serializes them: Sequential is public API, Functional is found through its module.
  if (class_name() == "Sequential") return {{"module", "keras"}, {"class_name", "Sequential"}, {"config", get_config()}, {"registered_name", nullptr}};
  return {{"module", "keras.src.models.functional"}, {"class_name", "Functional"}, {"config", get_config()}, {"registered_name", "Functional"}};
}

std::unique_ptr<Model> model_from_json(const Json& serialized) {
  if (!serialized.is_object() || !serialized.contains("class_name") || !serialized.contains("config"))
    throw std::invalid_argument("model config: expected {\"class_name\": ..., \"config\": {...}}");
  const std::string cls = serialized.at("class_name").get<std::string>();
  if (cls == "Sequential") return sequential_from_config(serialized.at("config"));
  if (cls == "Functional" || cls == "Model") return functional_from_config(serialized.at("config"));
  throw std::invalid_argument(fmt::format("model config: unknown model class '{}' (Sequential, Functional or Model)", cls));
}

}  // namespace strata
