#include "layers/layer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"
#include "layers/retrace.h"

namespace strata {

namespace {
thread_local int concrete_retraces = 0;
}

ConcreteRetrace::ConcreteRetrace() { ++concrete_retraces; }
ConcreteRetrace::~ConcreteRetrace() { --concrete_retraces; }

Layer::Layer(const std::string& name, const std::string& prefix, bool trainable)
    : name_(name.empty() ? unique_object_name(prefix) : name), trainable_(trainable) {}

void Layer::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (auto& w : weights_) w->set_trainable(trainable);
}

Json Layer::get_config() const {
  return {{"name", name_}, {"trainable", trainable_}, {"dtype", config::dtype_policy()}};
}

Json Layer::full_config() const {
  Json c = get_config();
  for (const auto& [key, regularizer] : regularizers_) c[key + "_regularizer"] = regularizer.to_json();
  for (const auto& [key, constraint] : constraints_) c[key + "_constraint"] = constraint->to_json();
  if (activity_regularizer_) c["activity_regularizer"] = activity_regularizer_->to_json();
  return c;
}

void Layer::set_regularizer(const std::string& key, const Regularizer& regularizer) {
  if (!get_config().contains(key + "_regularizer"))
    throw std::invalid_argument(fmt::format("{}: unknown or unsupported config key '{}_regularizer'", class_name(), key));
  regularizers_[key] = regularizer;
}

namespace {

// The names of the weights a key ("kernel", "recurrent", ...) names, in the order they are looked for
// ("depthwise" is DepthwiseConv's "kernel" and SeparableConv's "depthwise_kernel").
std::vector<std::string> weight_names_of(const std::string& key) {
  if (key == "recurrent") return {"recurrent_kernel"};
  if (key == "depthwise") return {"depthwise_kernel", "kernel"};
  if (key == "pointwise") return {"pointwise_kernel"};
  return {key};
}

bool is_named(const Variable& w, const std::string& wanted) {
  const std::string& n = w.name();
  return n == wanted || (n.size() > wanted.size() && n.compare(n.size() - wanted.size() - 1, std::string::npos, "/" + wanted) == 0);
}

}  // namespace

std::vector<VariablePtr> Layer::weights_named_by(const std::string& key) const {
  for (const std::string& wanted : weight_names_of(key)) {
    std::vector<VariablePtr> found;
    for (const VariablePtr& w : weights_)
      if (is_named(*w, wanted)) found.push_back(w);
    if (!found.empty()) return found;
  }
  return {};  // e.g. bias_regularizer without a bias, as Keras ignores it
}

std::vector<std::pair<VariablePtr, Regularizer>> Layer::weight_regularizers() const {
  std::vector<std::pair<VariablePtr, Regularizer>> out;
  for (const auto& [key, regularizer] : regularizers_)
    for (const VariablePtr& w : weights_named_by(key))
      if (w->trainable()) out.emplace_back(w, regularizer);
  return out;
}

void Layer::set_constraint(const std::string& key, ConstraintPtr constraint) {
  if (!get_config().contains(key + "_constraint"))
    throw std::invalid_argument(fmt::format("{}: unknown or unsupported config key '{}_constraint'", class_name(), key));
  if (constraint) constraints_[key] = constraint;
  else constraints_.erase(key);
  for (const VariablePtr& w : weights_named_by(key)) w->set_constraint(constraint);
}

void Layer::build(const Shape&) {}

Tensor Layer::call(const Tensor&) {
  throw std::invalid_argument(fmt::format("layer '{}' ({}) takes a list of inputs", name_, class_name()));
}

void Layer::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 1)
    throw std::invalid_argument(fmt::format("{} takes one input, got {}", class_name(), shapes.size()));
  build(shapes[0]);
}

Tensor Layer::call_multi(const std::vector<Tensor>& inputs) {
  if (inputs.size() != 1)
    throw std::invalid_argument(fmt::format("layer '{}' ({}) takes one input, got {}", name_, class_name(), inputs.size()));
  return call(inputs[0]);
}

std::shared_ptr<Layer> Layer::shared() {
  if (moved_to_) return moved_to_;
  if (auto self = weak_from_this().lock()) return self;
  auto heap = move_to_heap();
  moved_to_ = heap;
  return heap;
}

std::vector<Tensor> Layer::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  call_flags(call_arguments);
  return {call_multi(inputs)};
}

std::map<std::string, bool> Layer::call_flags(const Json& call_arguments, std::initializer_list<const char*> flags) const {
  std::map<std::string, bool> out;
  for (const char* f : flags) out[f] = false;
  for (const auto& [key, value] : call_arguments.items()) {
    if (value.is_null() || key == "training" || key == "mask") continue;
    auto it = out.find(key);
    if (it == out.end()) throw std::invalid_argument(fmt::format("layer '{}' ({}) takes no call argument '{}'", name_, class_name(), key));
    if (!value.is_boolean())
      throw std::invalid_argument(fmt::format("layer '{}' ({}): call argument '{}' must be true or false, got {}", name_, class_name(), key, value.dump()));
    it->second = value.get<bool>();
  }
  return out;
}

std::vector<Tensor> Layer::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  if (supports_masking() && !inputs.empty())
    for (Tensor& m : masks) m = get_keras_mask(inputs[0]);
  return masks;
}

Tensor get_keras_mask(const Tensor& tensor) {
  const ValueId m = tensor.graph().mask(tensor.id());
  return m < 0 ? Tensor() : Tensor(tensor.graph_ptr(), m);
}

void set_keras_mask(const Tensor& tensor, const Tensor& mask) {
  if (&mask.graph() != &tensor.graph()) throw std::invalid_argument("set_keras_mask: the mask belongs to another graph");
  tensor.graph().set_mask(tensor.id(), mask.id());
}

Json Layer::call_node(const std::vector<Json>& tensors, const Json& call_arguments) const {
  return {{"args", tensors.size() == 1 ? Json::array({tensors[0]}) : Json::array({Json(tensors)})}, {"kwargs", call_arguments}};
}

Tensor Layer::trace(const Tensor& inputs) { return trace(std::vector<Tensor>{inputs}); }

Tensor Layer::trace(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> outputs = trace_all(inputs);
  if (outputs.size() != 1)
    throw std::invalid_argument(fmt::format("layer '{}' ({}) returns {} tensors; call apply() to get them all", name_, class_name(), outputs.size()));
  return outputs[0];
}

std::vector<Tensor> Layer::trace_all(const std::vector<Tensor>& inputs, const Json& call_arguments, bool add_losses) {
  if (inputs.empty()) throw std::invalid_argument(fmt::format("layer '{}': called on no inputs", name_));
  if (!call_arguments.is_object())
    throw std::invalid_argument(fmt::format("layer '{}': call arguments must be a JSON object, got {}", name_, call_arguments.dump()));
  std::vector<Shape> shapes;
  std::vector<std::string> shape_names;
  for (const Tensor& t : inputs) {
    if (!t.valid()) throw std::invalid_argument(fmt::format("layer '{}': called on an empty tensor", name_));
    if (&t.graph() != &inputs[0].graph())
      throw std::invalid_argument(fmt::format("layer '{}': its inputs belong to different graphs", name_));
    shapes.push_back(t.shape());
    shape_names.push_back(t.shape().to_string());
  }
  NameScope scope(inputs[0].graph(), name_);
  if (!built_) {
    try {
      build_multi(shapes);
    } catch (const OutOfMemoryError& e) {  // kept apart: the caller may retry smaller
      throw OutOfMemoryError(fmt::format("layer '{}' ({}): {}", name_, class_name(), e.what()));
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("layer '{}' ({}): cannot build for input shape {}: {}", name_, class_name(),
                                              fmt::join(shape_names, ", "), e.what()));
    }
    input_shape_ = shapes[0];
    built_ = true;
  }
  std::vector<Tensor> outputs = call_all(inputs, call_arguments);
  if (activity_regularizer_ && add_losses)
    for (const Tensor& out : outputs)
      if (out.valid() && out.dtype() == DType::float32) inputs[0].graph().add_loss(out.id(), activity_regularizer_->activity_penalty(out).id());
  const std::vector<Tensor> masks = compute_mask(inputs, outputs);
  if (concrete_retraces == 0) {
    output_shapes_.clear();
    for (const Tensor& out : outputs) output_shapes_.push_back(out.shape());
  }
  for (std::size_t i = 0; i < outputs.size() && i < masks.size(); ++i)
    if (masks[i].valid()) set_keras_mask(outputs[i], masks[i]);
  return outputs;
}

std::vector<Tensor> Layer::deferred_call(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  std::vector<Shape> shapes;
  for (const std::int64_t stand_in : {7, 8}) {
    GraphScope scope(std::make_shared<Graph>());
    ConcreteRetrace keep_shapes;
    std::vector<Tensor> known;
    for (const Tensor& t : inputs) {
      Shape s = t.shape();
      for (int d = 1; d < s.rank(); ++d)
        if (s[d] < 0) s[d] = stand_in;
      known.push_back(ops::placeholder(s, t.dtype(), "stand_in"));
    }
    const std::vector<Tensor> outputs = call_all(known, call_arguments);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].dtype() != DType::float32)
        throw std::logic_error(fmt::format("layer '{}': a deferred output must be float32", name_));
      if (shapes.size() < outputs.size()) {
        shapes.push_back(outputs[i].shape());
        continue;
      }
      for (int d = 1; d < shapes[i].rank(); ++d)
        if (shapes[i][d] != outputs[i].shape()[d]) shapes[i][d] = -1;
    }
  }
  return ops::deferred(inputs, std::move(shapes));
}

Tensor Layer::operator()(const Tensor& inputs) { return (*this)(std::vector<Tensor>{inputs}); }

Tensor Layer::operator()(const std::vector<Tensor>& inputs) {
  LayerPtr self = shared();
  // trace() refuses a layer of several outputs before anything is recorded.
  const Tensor out = self->trace(inputs);
  record(self, inputs, {out}, Json::object());
  return out;
}

std::vector<Tensor> Layer::apply(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  LayerPtr self = shared();
  std::vector<Tensor> outputs = self->trace_all(inputs, call_arguments);
  record(self, inputs, outputs, call_arguments);
  return outputs;
}

void Layer::record(const LayerPtr& self, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const Json& call_arguments) {
  ModuleCall call{self, {}, {}, call_arguments.empty() ? std::string() : call_arguments.dump()};
  for (const Tensor& t : inputs) call.inputs.push_back(t.id());
  for (const Tensor& t : outputs) call.outputs.push_back(t.id());
  inputs[0].graph().record_call(std::move(call));
}

std::vector<VariablePtr> Layer::trainable_weights() const {
  std::vector<VariablePtr> out;
  for (const auto& w : weights_)
    if (w->trainable()) out.push_back(w);
  return out;
}

std::vector<VariablePtr> Layer::non_trainable_weights() const {
  std::vector<VariablePtr> out;
  for (const auto& w : weights_)
    if (!w->trainable()) out.push_back(w);
  return out;
}

std::int64_t Layer::count_params() const {
  std::int64_t n = 0;
  for (const auto& w : weights_) n += w->shape().numel();
  return n;
}

VariablePtr Layer::add_weight(const std::string& name, const Shape& shape, const Json& initializer, bool trainable) {
  auto init = get_initializer(initializer);
  auto var = std::make_shared<Variable>(name_ + "/" + name, shape, DType::float32, trainable && trainable_);
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  init->fill(values, shape, next_random_seed());
  var->assign(values);
  weights_.push_back(var);
  for (const auto& [key, constraint] : constraints_)
    for (const VariablePtr& w : weights_named_by(key))
      if (w == var) var->set_constraint(constraint);
  return var;
}

namespace config {

void check_keys(const Json& config, const std::string& class_name, std::initializer_list<const char*> known) {
  if (!config.is_object()) throw std::invalid_argument(fmt::format("{}: the config must be an object, got {}", class_name, config.dump()));
  for (const auto& [key, value] : config.items()) {
    if (value.is_null()) continue;
    bool ok = key == "name" || key == "trainable" || key == "dtype";
    for (const char* k : known) ok = ok || key == k;
    if (!ok) throw std::invalid_argument(fmt::format("{}: unknown or unsupported config key '{}'", class_name, key));
  }
}

std::string string_key(const Json& c, const char* key, const std::string& class_name, const char* fallback) {
  if (!c.contains(key) || c.at(key).is_null()) return fallback;
  if (!c.at(key).is_string()) throw std::invalid_argument(fmt::format("{}: {} must be a string, got {}", class_name, key, c.at(key).dump()));
  return c.at(key).get<std::string>();
}

std::string name(const Json& config) {
  if (!config.contains("name") || config.at("name").is_null()) return {};
  if (!config.at("name").is_string()) throw std::invalid_argument(fmt::format("layer name must be a string, got {}", config.at("name").dump()));
  return config.at("name").get<std::string>();
}

bool trainable(const Json& config) {
  if (!config.contains("trainable") || config.at("trainable").is_null()) return true;
  if (!config.at("trainable").is_boolean()) throw std::invalid_argument("'trainable' must be true or false");
  return config.at("trainable").get<bool>();
}

Shape shape(const Json& value, const std::string& what) {
  if (!value.is_array()) throw std::invalid_argument(fmt::format("{} must be a list of dimensions, got {}", what, value.dump()));
  if (value.size() > std::size_t(kMaxRank)) throw std::invalid_argument(fmt::format("{} has more than {} dimensions", what, kMaxRank));
  Shape s;
  for (const Json& d : value) {
    if (d.is_null()) s.push_back(-1);
    else if (d.is_number_integer() && d.get<std::int64_t>() >= 0) s.push_back(d.get<std::int64_t>());
    else throw std::invalid_argument(fmt::format("{}: bad dimension {} in {}", what, d.dump(), value.dump()));
  }
  return s;
}

Json shape_to_json(const Shape& shape) {
  Json out = Json::array();
  for (auto d : shape) out.push_back(d < 0 ? Json(nullptr) : Json(d));
  return out;
}

float number(const Json& c, const char* key, const std::string& cls, std::optional<float> fallback) {
  const bool given = c.contains(key) && !c.at(key).is_null();
  if (!given && fallback) return *fallback;
  if (!given || !c.at(key).is_number())
    throw std::invalid_argument(fmt::format("{}: '{}' must be a number, got {}", cls, key, given ? c.at(key).dump() : "nothing"));
  return c.at(key).get<float>();
}

std::optional<std::uint64_t> seed(const Json& c) {
  if (c.contains("seed") && c.at("seed").is_number_integer()) return c.at("seed").get<std::uint64_t>();
  return std::nullopt;
}

std::vector<int> axes(const Json& c, const char* key, const std::string& cls, std::vector<int> fallback) {
  if (!c.contains(key) || c.at(key).is_null()) return fallback;
  const Json& v = c.at(key);
  if (v.is_number_integer()) return {v.get<int>()};
  if (v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_number_integer(); })) return v.get<std::vector<int>>();
  throw std::invalid_argument(fmt::format("{}: '{}' must be an integer or a list of integers, got {}", cls, key, v.dump()));
}

NumberArray number_array(const Json& value, const std::string& what) {
  const Json& v = value.is_object() && value.value("class_name", "") == "__numpy__" && value.contains("config")
                      ? value.at("config").value("value", Json())
                      : value;
  NumberArray out;
  if (v.is_number()) {
    out.values.push_back(v.get<float>());
    return out;
  }
  // Walk the nesting, taking each level's length from its first element; ragged lists are refused.
  const Json* level = &v;
  while (level->is_array()) {
    if (out.shape.rank() == kMaxRank) throw std::invalid_argument(fmt::format("{} has more than {} dimensions", what, kMaxRank));
    out.shape.push_back(std::int64_t(level->size()));
    if (level->empty()) break;
    level = &level->at(0);
  }
  if (out.shape.rank() == 0 || !(level->is_number() || level->is_array()))
    throw std::invalid_argument(fmt::format("{} must be a number or a list of numbers, got {}", what, value.dump()));
  const auto walk = [&](const auto& self, const Json& node, int depth) -> void {
    if (depth == out.shape.rank()) {
      if (!node.is_number()) throw std::invalid_argument(fmt::format("{}: {} is not a number", what, node.dump()));
      out.values.push_back(node.get<float>());
      return;
    }
    if (!node.is_array() || std::int64_t(node.size()) != out.shape[depth])
      throw std::invalid_argument(fmt::format("{} is not a regular array of numbers: {}", what, value.dump()));
    for (const Json& e : node) self(self, e, depth + 1);
  };
  walk(walk, v, 0);
  return out;
}

Json number_array_to_json(const NumberArray& array) {
  if (array.shape.rank() == 0) return array.values.at(0);
  std::size_t next = 0;
  const auto build = [&](const auto& self, int depth) -> Json {
    Json node = Json::array();
    for (std::int64_t i = 0; i < array.shape[depth]; ++i)
      node.push_back(depth + 1 == array.shape.rank() ? Json(array.values.at(next++)) : self(self, depth + 1));
    return node;
  };
  return build(build, 0);
}

void require_channels_last(const Json& config, const std::string& class_name) {
  if (config.contains("data_format") && !config.at("data_format").is_null() && config.at("data_format") != "channels_last")
    throw std::invalid_argument(fmt::format("{}: data_format {} is not supported (channels_last only)", class_name,
                                            config.at("data_format").dump()));
}

std::vector<int> int_tuple(const Json& config, const char* key, int rank, std::vector<int> fallback) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  const Json& v = config.at(key);
  if (v.is_number_integer()) return std::vector<int>(static_cast<std::size_t>(rank), v.get<int>());
  if (!v.is_array()) throw std::invalid_argument(fmt::format("'{}' must be an integer or a list, got {}", key, v.dump()));
  return v.get<std::vector<int>>();
}

Json initializer(const Json& c, const char* key, const char* fallback) {
  return c.contains(key) && !c.at(key).is_null() ? c.at(key) : Json(fallback);
}

Json dtype_policy() {
  return {{"module", "keras"}, {"class_name", "DTypePolicy"}, {"config", {{"name", "float32"}}}, {"registered_name", nullptr}};
}

}  // namespace config
}  // namespace strata
