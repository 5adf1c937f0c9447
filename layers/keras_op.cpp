#include "layers/keras_op.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <variant>

#include "graph/einsum.h"
#include "graph/ops.h"

namespace strata {

namespace {

// A positional argument: a tensor, a number, or anything else (a list of tensors, GetItem's indices) as JSON.
using Argument = std::variant<Tensor, float, Json>;

struct OpContext {
  const std::string& name;  // the node, for errors
  const std::string& op;
  const Json& params;
  const std::vector<Tensor>& inputs;  // the tensors that {"__tensor__": i} in a JSON argument stands for
  std::vector<Argument> args;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(fmt::format("Keras op '{}' ({}): {}", name, op, what));
  }
  const Tensor& tensor(std::size_t i) const {
    if (i >= args.size() || !std::holds_alternative<Tensor>(args[i])) fail(fmt::format("argument {} must be a tensor", i));
    return std::get<Tensor>(args[i]);
  }
  Operand operand(std::size_t i) const {
    if (i >= args.size()) fail(fmt::format("argument {} is missing", i));
    if (const auto* t = std::get_if<Tensor>(&args[i])) return *t;
    if (const auto* f = std::get_if<float>(&args[i])) return *f;
    fail(fmt::format("argument {} must be a tensor or a number", i));
  }
  float number(const char* key, std::optional<float> fallback = std::nullopt) const {
    if (!params.contains(key) || params.at(key).is_null()) {
      if (fallback) return *fallback;
      fail(fmt::format("'{}' is missing", key));
    }
    if (!params.at(key).is_number()) fail(fmt::format("'{}' must be a number, got {}", key, params.at(key).dump()));
    return params.at(key).get<float>();
  }
  // An axis or a list of axes (empty: all), as Keras's reductions take them.
  std::vector<int> axes(const char* key) const {
    if (!params.contains(key) || params.at(key).is_null()) return {};
    const Json& a = params.at(key);
    if (a.is_number_integer()) return {a.get<int>()};
    if (a.is_array() && std::all_of(a.begin(), a.end(), [](const Json& e) { return e.is_number_integer(); })) return a.get<std::vector<int>>();
    fail(fmt::format("'{}' must be an integer, a list of integers or null, got {}", key, a.dump()));
  }
  int axis(const char* key, int fallback) const {
    const std::vector<int> a = axes(key);
    if (a.size() > 1) fail(fmt::format("'{}' must be one axis", key));
    return a.empty() ? fallback : a[0];
  }
  bool flag(const char* key, bool fallback) const {
    if (!params.contains(key) || params.at(key).is_null()) return fallback;
    if (!params.at(key).is_boolean()) fail(fmt::format("'{}' must be true or false", key));
    return params.at(key).get<bool>();
  }
};

// x[indices] with Keras's serialized indices: integers, __slice__ (step 1), __ellipsis__ and null (new axis).
Tensor get_item(const OpContext& c) {
  const Tensor& x = c.tensor(0);
  if (c.args.size() != 2 || std::holds_alternative<Tensor>(c.args[1]))
    c.fail("expects a tensor and its indices");
  Json index = std::holds_alternative<float>(c.args[1]) ? Json(int(std::get<float>(c.args[1]))) : std::get<Json>(c.args[1]);
  if (!index.is_array()) index = Json::array({index});
  const Shape shape = x.shape();
  auto kind = [](const Json& e) { return e.is_object() ? e.value("class_name", std::string()) : std::string(); };
  int consumed = 0;
  for (const Json& e : index) consumed += e.is_number_integer() || kind(e) == "__slice__";
  std::vector<std::int64_t> start, size, result;
  int dim = 0;
  auto take_slice = [&](const Json& cfg) {
    const std::int64_t n = shape[dim];
    const Json step = cfg.value("step", Json());
    if (!step.is_null() && step != 1) c.fail("slices with a step other than 1 are not supported");
    const Json lo = cfg.value("start", Json()), hi = cfg.value("stop", Json());
    if (n < 0) {
      if (!lo.is_null() || !hi.is_null()) c.fail(fmt::format("axis {} has no fixed size to slice", dim));
      start.push_back(0), size.push_back(-1), result.push_back(-1);
      return;
    }
    auto resolve = [&](const Json& v, std::int64_t fallback) {
      if (v.is_null()) return fallback;
      if (!v.is_number_integer()) c.fail(fmt::format("slice bound {} must be an integer", v.dump()));
      const std::int64_t i = v.get<std::int64_t>();
      return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n);
    };
    const std::int64_t b = resolve(lo, 0), e = std::max(b, resolve(hi, n));
    start.push_back(b), size.push_back(e - b), result.push_back(e - b);
  };
  for (const Json& e : index) {
    if (kind(e) == "__ellipsis__") {
      for (int k = 0; k < shape.rank() - consumed; ++k, ++dim) take_slice(Json::object());
    } else if (e.is_null()) {
      result.push_back(1);
    } else if (e.is_number_integer()) {
      if (dim >= shape.rank()) c.fail("too many indices");
      const std::int64_t n = shape[dim], i = e.get<std::int64_t>();
      if (n < 0) c.fail(fmt::format("axis {} has no fixed size to index", dim));
      if (i < -n || i >= n) c.fail(fmt::format("index {} is out of range for axis {} of size {}", i, dim, n));
      start.push_back(i < 0 ? i + n : i), size.push_back(1), ++dim;
    } else if (kind(e) == "__slice__") {
      if (dim >= shape.rank()) c.fail("too many indices");
      take_slice(e.value("config", Json::object())), ++dim;
    } else {
      c.fail(fmt::format("unsupported index {}", e.dump()));
    }
  }
  for (; dim < shape.rank(); ++dim) take_slice(Json::object());
  return ops::reshape(ops::slice(x, start, size), result);
}

using OpFunction = std::function<Tensor(const OpContext&)>;

const std::map<std::string, OpFunction>& numpy_ops() {
  auto binary = [](Tensor (*f)(const Operand&, const Operand&)) {
    return [f](const OpContext& c) {
      if (c.args.size() != 2) c.fail("expects two arguments");
      if (!std::holds_alternative<Tensor>(c.args[0]) && !std::holds_alternative<Tensor>(c.args[1])) c.fail("expects a tensor among its arguments");
      return f(c.operand(0), c.operand(1));
    };
  };
  auto unary = [](Tensor (*f)(const Tensor&)) { return [f](const OpContext& c) { return f(c.tensor(0)); }; };
  auto reduction = [](Tensor (*f)(const Tensor&, std::vector<int>, bool)) {
    return [f](const OpContext& c) {
      if (c.params.contains("initial") && !c.params.at("initial").is_null()) c.fail("'initial' is not supported");
      return f(c.tensor(0), c.axes("axis"), c.flag("keepdims", false));
    };
  };
  static const std::map<std::string, OpFunction> table = {
      {"Add", binary(ops::add)},
      {"Subtract", binary(ops::subtract)},
      {"Multiply", binary(ops::multiply)},
      {"Divide", binary(ops::divide)},
      {"TrueDivide", binary(ops::divide)},
      {"Maximum", binary(ops::maximum)},
      {"Minimum", binary(ops::minimum)},
      {"Power", binary(ops::power)},
      {"Matmul", binary(ops::matmul)},
      {"Negative", unary(ops::negative)},
      {"Abs", unary(ops::abs)},
      {"Absolute", unary(ops::abs)},
      {"Square", unary(ops::square)},
      {"Sqrt", unary(ops::sqrt)},
      {"Exp", unary(ops::exp)},
      {"Log", unary(ops::log)},
      {"Log1p", unary(ops::log1p)},
      {"Tanh", unary(ops::tanh)},
      {"Sin", unary(ops::sin)},
      {"Cos", unary(ops::cos)},
      {"Reciprocal", unary(ops::reciprocal)},
      {"Sign", unary(ops::sign)},
      {"Mean", reduction(ops::mean)},
      {"Sum", reduction(ops::sum)},
      {"Max", reduction(ops::max)},
      {"Min", reduction(ops::min)},
      {"Clip", [](const OpContext& c) { return ops::clip(c.tensor(0), c.number("x_min"), c.number("x_max")); }},
      {"Reshape",
       [](const OpContext& c) {
         if (!c.params.contains("newshape") || !c.params.at("newshape").is_array()) c.fail("'newshape' must be a list");
         return ops::reshape(c.tensor(0), c.params.at("newshape").get<std::vector<std::int64_t>>());
       }},
      {"Transpose", [](const OpContext& c) { return ops::transpose(c.tensor(0), c.axes("axes")); }},
      {"Einsum",
       [](const OpContext& c) {
         if (!c.params.contains("subscripts") || !c.params.at("subscripts").is_string()) c.fail("'subscripts' must be a string");
         if (c.args.size() != 2) c.fail(fmt::format("takes two operands here, got {}", c.args.size()));
         try {
           return ops::einsum(c.params.at("subscripts").get<std::string>(), c.tensor(0), c.tensor(1));
         } catch (const std::invalid_argument& e) {
           c.fail(e.what());
         }
       }},
      {"ExpandDims",
       [](const OpContext& c) {
         Tensor x = c.tensor(0);
         const std::vector<int> axes = c.axes("axis");
         if (axes.empty()) c.fail("'axis' is missing");
         const int rank = x.rank() + int(axes.size());
         std::vector<int> sorted;
         for (int a : axes) sorted.push_back(a < 0 ? a + rank : a);
         std::sort(sorted.begin(), sorted.end());
         for (int a : sorted) x = ops::expand_dims(x, a);
         return x;
       }},
      {"Squeeze",
       [](const OpContext& c) {
         Tensor x = c.tensor(0);
         std::vector<int> axes = c.axes("axis");
         if (axes.empty())
           for (int d = 0; d < x.rank(); ++d)
             if (x.shape()[d] == 1) axes.push_back(d);
         for (int& a : axes) a = x.shape().normalize_axis(a);
         std::sort(axes.rbegin(), axes.rend());
         for (int a : axes) x = ops::squeeze(x, a);
         return x;
       }},
      {"Concatenate",
       [](const OpContext& c) {
         if (c.args.size() != 1 || !std::holds_alternative<Json>(c.args[0]) || !std::get<Json>(c.args[0]).is_array())
           c.fail("expects one list of tensors");
         std::vector<Tensor> xs;
         for (const Json& e : std::get<Json>(c.args[0])) {
           if (!e.is_object() || !e.contains("__tensor__")) c.fail("expects a list of tensors");
           xs.push_back(c.inputs.at(e.at("__tensor__").get<std::size_t>()));
         }
         return ops::concatenate(xs, c.axis("axis", 0));
       }},
      {"GetItem", get_item},
  };
  return table;
}

const std::map<std::string, OpFunction>& nn_ops() {
  auto unary = [](Tensor (*f)(const Tensor&)) { return [f](const OpContext& c) { return f(c.tensor(0)); }; };
  static const std::map<std::string, OpFunction> table = {
      {"Relu", unary(ops::relu)},
      {"Relu6", unary(ops::relu6)},
      {"Sigmoid", unary(ops::sigmoid)},
      {"Softplus", unary(ops::softplus)},
      {"Softsign", unary(ops::softsign)},
      {"Silu", unary(ops::silu)},
      {"Selu", unary(ops::selu)},
      {"HardSigmoid", unary(ops::hard_sigmoid)},
      {"HardSilu", [](const OpContext& c) { return ops::multiply(c.tensor(0), ops::hard_sigmoid(c.tensor(0))); }},
      {"Gelu", [](const OpContext& c) { return ops::gelu(c.tensor(0), c.flag("approximate", true)); }},
      {"Elu", [](const OpContext& c) { return ops::elu(c.tensor(0), c.number("alpha", 1.f)); }},
      {"LeakyRelu", [](const OpContext& c) { return ops::leaky_relu(c.tensor(0), c.number("negative_slope", 0.2f)); }},
      {"Softmax", [](const OpContext& c) { return ops::softmax(c.tensor(0), c.axis("axis", -1)); }},
      {"LogSoftmax", [](const OpContext& c) { return ops::log_softmax(c.tensor(0), c.axis("axis", -1)); }},
  };
  return table;
}

const OpFunction* find_op(const std::string& module, const std::string& op) {
  const auto& table = module == "keras.src.ops.nn" ? nn_ops() : numpy_ops();
  if (module != "keras.src.ops.nn" && module != "keras.src.ops.numpy") return nullptr;
  const auto it = table.find(op);
  return it == table.end() ? nullptr : &it->second;
}

bool is_keras_tensor(const Json& v) { return v.is_object() && v.value("class_name", std::string()) == "__keras_tensor__"; }

// Replaces serialized tensors by {"__tensor__": i} in order, as for_each_keras_tensor visits them.
Json template_of(const Json& v, int& next, const std::string& name) {
  if (is_keras_tensor(v)) return Json{{"__tensor__", next++}};
  if (v.is_array()) {
    Json out = Json::array();
    for (const Json& e : v) out.push_back(template_of(e, next, name));
    return out;
  }
  if (v.is_object() && v.contains("__tensor__")) throw std::invalid_argument(fmt::format("Keras op '{}': malformed argument {}", name, v.dump()));
  return v;
}

// The template with its tensors put back: serialized ones (writing a config) or their indices' tensors.
Json fill_template(const Json& t, const std::vector<Json>& tensors) {
  if (t.is_object() && t.contains("__tensor__")) return tensors.at(t.at("__tensor__").get<std::size_t>());
  if (t.is_array()) {
    Json out = Json::array();
    for (const Json& e : t) out.push_back(fill_template(e, tensors));
    return out;
  }
  return t;
}

}  // namespace

KerasOp::KerasOp(std::string module, std::string op, Json params, const std::string& name)
    : LayerBase(name, "op"), module_(std::move(module)), op_(std::move(op)), params_(std::move(params)) {
  if (!find_op(module_, op_)) {
    std::vector<std::string> known;
    for (const auto& [k, f] : numpy_ops()) known.push_back(k);
    for (const auto& [k, f] : nn_ops()) known.push_back(k);
    throw std::invalid_argument(fmt::format("'{}' is the Keras op {} ({}), which Strata does not compute (it does: {})", this->name(), op_,
                                            module_, fmt::join(known, ", ")));
  }
}

Json KerasOp::get_config() const {
  // Keras constructs an op from its config: the name and the constructor's arguments, nothing else.
  Json c = params_;
  c["name"] = name();
  return c;
}

Json KerasOp::call_node(const std::vector<Json>& tensors, const Json& call_arguments) const {
  return {{"args", fill_template(call_arguments.value("args", Json::array()), tensors)}, {"kwargs", Json::object()}};
}

bool KerasOp::is_op_entry(const Json& entry) {
  return entry.is_object() && entry.value("module", std::string()).rfind("keras.src.ops", 0) == 0;
}

LayerPtr KerasOp::from_entry(const Json& entry) {
  const Json config = entry.value("config", Json::object());
  const std::string name = entry.contains("name") ? entry.at("name").get<std::string>() : config.value("name", std::string());
  Json params = config;
  params.erase("name");
  return std::make_shared<KerasOp>(entry.value("module", std::string()), entry.value("class_name", std::string()), params, name);
}

Json KerasOp::call_arguments_of(const Json& node, const std::string& name) {
  if (!node.is_object()) throw std::invalid_argument(fmt::format("Keras op '{}': its inbound node must be {{\"args\", \"kwargs\"}}", name));
  const Json kwargs = node.value("kwargs", Json::object());
  for (const auto& [key, value] : kwargs.items())
    if (!value.is_null()) throw std::invalid_argument(fmt::format("Keras op '{}': keyword argument '{}' is not supported", name, key));
  int next = 0;
  return {{"args", template_of(node.value("args", Json::array()), next, name)}};
}

namespace {

// A tf.keras 2 function and the Keras 3 operation it is: the keyword holding the second operand, and the
// keywords that become the operation's constructor arguments.
struct TfFunction {
  std::string module, op, second;
  std::map<std::string, std::string> params;
};

const std::map<std::string, TfFunction>& tf_functions() {
  const std::string numpy = "keras.src.ops.numpy", nn = "keras.src.ops.nn";
  const std::map<std::string, std::string> reduction{{"axis", "axis"}, {"keepdims", "keepdims"}};
  static const std::map<std::string, TfFunction> table = {
      {"__operators__.add", {numpy, "Add", "y", {}}},
      {"math.add", {numpy, "Add", "y", {}}},
      {"math.subtract", {numpy, "Subtract", "y", {}}},
      {"math.multiply", {numpy, "Multiply", "y", {}}},
      {"math.truediv", {numpy, "TrueDivide", "y", {}}},
      {"math.divide", {numpy, "TrueDivide", "y", {}}},
      {"math.maximum", {numpy, "Maximum", "y", {}}},
      {"math.minimum", {numpy, "Minimum", "y", {}}},
      {"math.pow", {numpy, "Power", "y", {}}},
      {"linalg.matmul", {numpy, "Matmul", "b", {}}},
      {"math.negative", {numpy, "Negative", "", {}}},
      {"math.abs", {numpy, "Abs", "", {}}},
      {"math.square", {numpy, "Square", "", {}}},
      {"math.sqrt", {numpy, "Sqrt", "", {}}},
      {"math.exp", {numpy, "Exp", "", {}}},
      {"math.log", {numpy, "Log", "", {}}},
      {"math.tanh", {numpy, "Tanh", "", {}}},
      {"math.sigmoid", {nn, "Sigmoid", "", {}}},
      {"nn.sigmoid", {nn, "Sigmoid", "", {}}},
      {"nn.relu", {nn, "Relu", "", {}}},
      {"nn.relu6", {nn, "Relu6", "", {}}},
      {"nn.silu", {nn, "Silu", "", {}}},
      {"nn.swish", {nn, "Silu", "", {}}},
      {"nn.elu", {nn, "Elu", "", {}}},
      {"nn.selu", {nn, "Selu", "", {}}},
      {"math.softplus", {nn, "Softplus", "", {}}},
      {"nn.softplus", {nn, "Softplus", "", {}}},
      {"nn.gelu", {nn, "Gelu", "", {{"approximate", "approximate"}}}},
      {"nn.leaky_relu", {nn, "LeakyRelu", "", {{"alpha", "negative_slope"}}}},
      {"nn.softmax", {nn, "Softmax", "", {{"axis", "axis"}}}},
      {"math.reduce_mean", {numpy, "Mean", "", reduction}},
      {"math.reduce_sum", {numpy, "Sum", "", reduction}},
      {"math.reduce_max", {numpy, "Max", "", reduction}},
      {"math.reduce_min", {numpy, "Min", "", reduction}},
      {"reshape", {numpy, "Reshape", "", {{"shape", "newshape"}}}},
      {"transpose", {numpy, "Transpose", "", {{"perm", "axes"}}}},
      {"compat.v1.transpose", {numpy, "Transpose", "", {{"perm", "axes"}}}},
      {"expand_dims", {numpy, "ExpandDims", "", {{"axis", "axis"}}}},
      {"squeeze", {numpy, "Squeeze", "", {{"axis", "axis"}}}},
      {"concat", {numpy, "Concatenate", "", {{"axis", "axis"}}}},
      {"clip_by_value", {numpy, "Clip", "", {{"clip_value_min", "x_min"}, {"clip_value_max", "x_max"}}}},
      {"__operators__.getitem", {numpy, "GetItem", "", {}}},
  };
  return table;
}

bool is_tensor_ref(const Json& v) {
  return v.is_array() && v.size() == 3 && v[0].is_string() && v[1].is_number_integer() && v[2].is_number_integer();
}

// The keywords of a TFOpLambda node that are neither operands nor constructor arguments nor defaults.
void check_tf_keywords(const Json& kwargs, const TfFunction& f, const std::string& where) {
  for (const auto& [key, value] : kwargs.items()) {
    if (key == "name" || key == f.second || key == "slice_spec" || f.params.count(key)) continue;
    if (value.is_null() || value == false) continue;  // conjugate, transpose_a, ... left at their defaults
    throw std::invalid_argument(fmt::format("{}: keyword argument '{}' = {} is not supported", where, key, value.dump()));
  }
}

// TF's slice_spec entry as Keras 3 serializes an index.
Json keras_index(const Json& e) {
  if (e.is_object() && e.value("class_name", std::string()) == "__ellipsis__") return {{"class_name", "__ellipsis__"}, {"config", Json::object()}};
  if (e.is_object()) return {{"class_name", "__slice__"}, {"config", {{"start", e.value("start", Json())}, {"stop", e.value("stop", Json())}, {"step", e.value("step", Json())}}}};
  return e;
}

}  // namespace

bool KerasOp::is_tf_op_entry(const Json& entry) {
  const std::string cls = entry.is_object() ? entry.value("class_name", std::string()) : std::string();
  return cls == "TFOpLambda" || cls == "SlicingOpLambda";
}

LayerPtr KerasOp::from_tf_entry(const Json& entry) {
  const Json config = entry.value("config", Json::object());
  const std::string name = entry.contains("name") ? entry.at("name").get<std::string>() : config.value("name", std::string());
  const std::string function = config.value("function", std::string());
  const auto it = tf_functions().find(function);
  if (it == tf_functions().end()) {
    std::vector<std::string> known;
    for (const auto& [k, f] : tf_functions()) known.push_back("tf." + k);
    throw std::invalid_argument(fmt::format("'{}' is the TensorFlow function tf.{}, which Strata does not compute (it does: {})", name, function,
                                            fmt::join(known, ", ")));
  }
  // The constructor arguments come from the first node's keywords (later nodes must agree).
  Json params = Json::object();
  const Json nodes = entry.value("inbound_nodes", Json::array());
  const Json first = nodes.empty() ? Json() : tf_node_entries(nodes[0]);
  if (first.is_array() && !first.empty() && first[0].is_array() && first[0].size() > 3 && first[0][3].is_object()) {
    const Json& kwargs = first[0][3];
    for (const auto& [tf_key, keras_key] : it->second.params)
      if (kwargs.contains(tf_key) && !kwargs.at(tf_key).is_null()) params[keras_key] = kwargs.at(tf_key);
  }
  if (it->second.op == "Gelu" && !params.contains("approximate")) params["approximate"] = false;  // TF's default
  auto op = std::make_shared<KerasOp>(it->second.module, it->second.op, params, name);
  op->tf_function_ = function;
  return op;
}

Json KerasOp::tf_node_entries(const Json& node) {
  return node.is_array() && !node.empty() && node[0].is_string() ? Json::array({node}) : node;
}

std::pair<std::vector<Json>, Json> KerasOp::tf_node(const Json& serialized, const KerasOp& op) {
  const std::string where = fmt::format("TF op layer '{}' (tf.{})", op.name(), op.tf_function_);
  const TfFunction& f = tf_functions().at(op.tf_function_);
  const Json node = tf_node_entries(serialized);
  if (!node.is_array() || node.empty()) throw std::invalid_argument(fmt::format("{}: malformed inbound node {}", where, node.dump()));
  std::vector<Json> refs;
  auto operand = [&](const Json& v) -> Json {
    if (is_tensor_ref(v)) {
      refs.push_back(Json::array({v[0], v[1], v[2]}));
      return Json{{"__tensor__", refs.size() - 1}};
    }
    if (v.is_number()) return v;
    throw std::invalid_argument(fmt::format("{}: operand {} is neither a tensor nor a number", where, v.dump()));
  };
  // Each entry is [layer, node, tensor, keywords], or ["_CONSTANT_VALUE", -1, value, keywords] for a
  // constant first argument; several entries are a list of tensors (concat).
  auto first_of = [&](const Json& e) -> Json {
    if (!e.is_array() || e.size() < 3 || !e[0].is_string()) throw std::invalid_argument(fmt::format("{}: malformed inbound entry {}", where, e.dump()));
    if (e[0] == "_CONSTANT_VALUE") return e[2];
    return operand(Json::array({e[0], e[1], e[2]}));
  };
  const Json kwargs = node[0].size() > 3 && node[0][3].is_object() ? node[0][3] : Json::object();
  check_tf_keywords(kwargs, f, where);
  for (const auto& [tf_key, keras_key] : f.params) {
    const Json value = kwargs.contains(tf_key) ? kwargs.at(tf_key) : Json();
    const Json have = op.params_.contains(keras_key) ? op.params_.at(keras_key) : Json();
    if (!value.is_null() && value != have)
      throw std::invalid_argument(fmt::format("{}: its calls differ in '{}' ({} and {})", where, tf_key, have.dump(), value.dump()));
  }
  Json args = Json::array();
  if (f.op == "Concatenate") {
    Json list = Json::array();
    for (const Json& e : node) list.push_back(first_of(e));
    args.push_back(list);
  } else {
    if (node.size() != 1) throw std::invalid_argument(fmt::format("{}: expects one input, got {}", where, node.size()));
    args.push_back(first_of(node[0]));
    if (!f.second.empty()) {
      if (!kwargs.contains(f.second)) throw std::invalid_argument(fmt::format("{}: its second operand '{}' is missing", where, f.second));
      args.push_back(operand(kwargs.at(f.second)));
    }
    if (f.op == "GetItem") {
      const Json spec = kwargs.value("slice_spec", Json());
      if (spec.is_array()) {
        Json index = Json::array();
        for (const Json& e : spec) index.push_back(keras_index(e));
        args.push_back(index);
      } else {
        args.push_back(keras_index(spec));
      }
    }
  }
  return {refs, Json{{"args", args}}};
}

std::vector<Tensor> KerasOp::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  // Without a template (a call from C++): the tensors are the arguments, in order.
  Json args = call_arguments.value("args", Json());
  if (args.is_null()) {
    args = Json::array();
    for (std::size_t i = 0; i < inputs.size(); ++i) args.push_back(Json{{"__tensor__", i}});
  }
  OpContext c{name(), op_, params_, inputs, {}};
  for (const Json& a : args) {
    if (a.is_object() && a.contains("__tensor__")) c.args.emplace_back(inputs.at(a.at("__tensor__").get<std::size_t>()));
    else if (a.is_number()) c.args.emplace_back(a.get<float>());
    else c.args.emplace_back(a);
  }
  return {(*find_op(module_, op_))(c)};
}

}  // namespace strata
