#include "layers/multi_head_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <stdexcept>

#include "graph/ops.h"
#include "layers/attention.h"
#include "layers/initializers.h"

namespace strata {

namespace {

// Keras's sliding-window mask: 1 where |row - column| < window, shaped (1, rows, columns).
Tensor sliding_window_mask(const Tensor& like, std::int64_t rows, std::int64_t columns, int window) {
  auto mask = std::make_shared<Variable>("sliding_window_mask", Shape{1, rows, columns}, DType::float32, /*trainable=*/false);
  std::vector<float> values(static_cast<std::size_t>(rows * columns));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < columns; ++c) values[std::size_t(r * columns + c)] = std::abs(r - c) < window ? 1.f : 0.f;
  mask->assign(values);
  return ops::variable(mask, like);
}

}  // namespace

HeadsAttention::HeadsAttention(int query_heads, int key_value_heads, int key_dim, MultiHeadAttentionOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), query_heads_(query_heads), key_value_heads_(key_value_heads), key_dim_(key_dim),
      options_(std::move(options)), seed_(options_.seed) {
  if (!(options_.dropout >= 0.f && options_.dropout < 1.f))
    throw std::invalid_argument(fmt::format("{}: dropout must be in [0, 1), got {}", name(), options_.dropout));
  if (options_.sliding_window < 0)
    throw std::invalid_argument(fmt::format("{}: sliding_window must be positive (or 0 for none), got {}", name(), options_.sliding_window));
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void HeadsAttention::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 2 && shapes.size() != 3)
    throw std::invalid_argument(fmt::format("takes query and value, or query, value and key; got {} inputs", shapes.size()));
  for (const Shape& s : shapes)
    if (s.rank() != 3 || s[2] <= 0)
      throw std::invalid_argument(fmt::format("takes (batch, steps, features) inputs with known features, got {}", s.to_string()));
  const Shape& key_shape = shapes.size() == 3 ? shapes[2] : shapes[1];
  auto projection = [&](const char* name, std::int64_t in, std::int64_t heads, std::int64_t dim) {
    Projection p;
    p.kernel = add_weight(fmt::format("{}/kernel", name), {in, heads, dim}, options_.kernel_initializer);
    if (options_.use_bias) p.bias = add_weight(fmt::format("{}/bias", name), {heads, dim}, options_.bias_initializer);
    return p;
  };
  // Keras's order: query, key, gate, value, output.
  query_ = projection("query", shapes[0][2], query_heads_, key_dim_);
  key_ = projection("key", key_shape[2], key_value_heads_, key_dim_);
  if (options_.use_gate) gate_ = projection("gate", shapes[0][2], query_heads_, options_.value_dim);
  value_ = projection("value", shapes[1][2], key_value_heads_, options_.value_dim);
  const std::int64_t out = options_.output_shape > 0 ? options_.output_shape : shapes[0][2];
  output_.kernel = add_weight("attention_output/kernel", {query_heads_, options_.value_dim, out}, options_.kernel_initializer);
  if (options_.use_bias) output_.bias = add_weight("attention_output/bias", {out}, options_.bias_initializer);
}

std::vector<Tensor> HeadsAttention::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  const auto flags = call_flags(call_arguments, {"return_attention_scores", "use_causal_mask"});
  const bool return_scores = flags.at("return_attention_scores"), causal = flags.at("use_causal_mask");
  if (inputs.size() != 2 && inputs.size() != 3)
    throw std::invalid_argument(fmt::format("layer '{}' ({}) takes query and value, or query, value and key", name(), class_name()));
  const Tensor& query = inputs[0];
  const Tensor& value = inputs[1];
  const Tensor& key = inputs.size() == 3 ? inputs[2] : inputs[1];
  const std::int64_t t = query.shape()[1], s = key.shape()[1];
  // The causal and sliding-window masks are built for the lengths: unknown ones wait for the data's.
  if ((causal || options_.sliding_window > 0) && (t < 0 || s < 0)) return deferred_call(inputs, call_arguments);

  const std::int64_t value_dim = options_.value_dim;
  // (batch, T, d) -> (batch, T, heads * dim): one GEMM by the kernel read as (d, heads * dim).
  auto project = [&](const Tensor& x, const Projection& p) {
    const Shape& k = p.kernel->shape();
    Tensor y = ops::matmul(x, ops::reshape(ops::variable(p.kernel, x), {k[0], k[1] * k[2]}));
    if (p.bias) y = ops::add(y, ops::reshape(ops::variable(p.bias, x), {k[1] * k[2]}));
    return y;
  };
  // (batch, T, heads * dim) -> (batch, heads, T, dim); each key/value head repeated for its group of
  // query heads (keras.ops.repeat on the heads axis: head h reads key/value head h / group).
  auto split_heads = [&](const Tensor& y, std::int64_t heads, std::int64_t dim) {
    Tensor h = ops::transpose(ops::reshape(y, {-1, y.shape()[1], heads, dim}), {0, 2, 1, 3});
    if (heads == query_heads_) return h;
    const std::int64_t group = query_heads_ / heads;
    std::vector<float> indices(static_cast<std::size_t>(query_heads_));
    for (std::int64_t i = 0; i < query_heads_; ++i) indices[std::size_t(i)] = float(i / group);
    auto v = std::make_shared<Variable>(fmt::format("{}/repeated_heads", name()), Shape{query_heads_}, DType::float32, false);
    v->assign(indices);
    return ops::take(h, ops::cast(ops::variable(v, y), DType::int32), 1);
  };
  // Keras scales the query, not the scores.
  const Tensor q = ops::multiply(split_heads(project(query, query_), query_heads_, key_dim_), float(1.0 / std::sqrt(double(key_dim_))));
  const Tensor k = split_heads(project(key, key_), key_value_heads_, key_dim_);
  const Tensor v = split_heads(project(value, value_), key_value_heads_, value_dim);
  const Tensor scores = ops::matmul(q, ops::transpose(k, {0, 1, 3, 2}));  // (batch, heads, T, S)

  // The attention mask (batch or 1, T, S): the query's, value's and key's masks, the causal one and the window.
  Tensor mask;
  auto combine = [&](const Tensor& m) { mask = mask.valid() ? ops::multiply(mask, m) : m; };
  if (const Tensor m = get_keras_mask(query); m.valid()) combine(ops::expand_dims(m, 2));
  if (const Tensor m = get_keras_mask(value); m.valid()) combine(ops::expand_dims(m, 1));
  if (inputs.size() == 3)
    if (const Tensor m = get_keras_mask(key); m.valid()) combine(ops::expand_dims(m, 1));
  if (causal) combine(causal_mask(query, t, s));
  if (options_.sliding_window > 0) combine(sliding_window_mask(query, t, s, options_.sliding_window));
  // Keras computes the scores with its Softmax layer, which also zeroes the masked positions (a fully
  // masked row attends to nothing), when it returns them or applies dropout; otherwise with its fused
  // dot-product attention, which does not (a fully masked row attends uniformly). Both as Keras.
  const bool zero_masked = return_scores || options_.dropout > 0.f;
  Tensor probabilities = masked_softmax(scores, mask.valid() ? ops::expand_dims(mask, 1) : mask, zero_masked);
  const Tensor kept = options_.dropout > 0.f ? ops::dropout(probabilities, options_.dropout, seed_.value()) : probabilities;
  // (batch, heads, T, value_dim) -> (batch, T, heads * value_dim), gated, then the output projection.
  Tensor heads = ops::reshape(ops::transpose(ops::matmul(kept, v), {0, 2, 1, 3}), {-1, t, query_heads_ * value_dim});
  if (gate_.kernel) heads = ops::multiply(heads, ops::sigmoid(project(query, gate_)));
  const std::int64_t out = output_.kernel->shape()[2];
  Tensor y = ops::matmul(heads, ops::reshape(ops::variable(output_.kernel, query), {query_heads_ * value_dim, out}));
  if (output_.bias) y = ops::add(y, output_.bias);
  if (return_scores) return {y, probabilities};
  return {y};
}

std::vector<Tensor> HeadsAttention::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  masks[0] = get_keras_mask(inputs[0]);  // the output keeps the query's mask; the scores have none
  return masks;
}

SavedVariableGroups HeadsAttention::saved_variable_groups() const {
  auto group = [](const Projection& p) {
    std::vector<VariablePtr> vars = {p.kernel};
    if (p.bias) vars.push_back(p.bias);
    return vars;
  };
  const std::string prefix = sublayer_attribute_prefix();
  SavedVariableGroups groups = {{prefix + "query_dense/vars", group(query_)}, {prefix + "key_dense/vars", group(key_)}};
  if (gate_.kernel) groups.push_back({"_gate_dense/vars", group(gate_)});
  groups.push_back({prefix + "value_dense/vars", group(value_)});
  groups.push_back({prefix + "output_dense/vars", group(output_)});
  return groups;
}

Json HeadsAttention::call_node(const std::vector<Json>& tensors, const Json& call_arguments) const {
  Json kwargs = Json::object();
  if (tensors.size() > 2) kwargs["key"] = tensors[2];
  for (const auto& [key, value] : call_arguments.items()) kwargs[key] = value;
  return {{"args", Json::array({tensors[0], tensors.size() > 1 ? tensors[1] : tensors[0]})}, {"kwargs", kwargs}};
}

Json HeadsAttention::common_config() const {
  Json c = Layer::get_config();
  c["dropout"] = options_.dropout;
  c["use_bias"] = options_.use_bias;
  c["use_gate"] = options_.use_gate;
  c["sliding_window"] = options_.sliding_window > 0 ? Json(options_.sliding_window) : Json(nullptr);
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"}) c[k] = nullptr;
  c["seed"] = options_.seed ? Json(*options_.seed) : Json(nullptr);
  return c;
}

MultiHeadAttentionOptions HeadsAttention::common_options(const Json& c, const char* class_name) {
  MultiHeadAttentionOptions o;
  o.dropout = c.value("dropout", 0.f);
  o.use_bias = c.value("use_bias", true);
  o.use_gate = c.contains("use_gate") && !c.at("use_gate").is_null() && c.at("use_gate").get<bool>();
  if (c.contains("sliding_window") && !c.at("sliding_window").is_null()) {
    const Json& w = c.at("sliding_window");
    if (!w.is_number_integer() || w.get<int>() <= 0)
      throw std::invalid_argument(fmt::format("{}: sliding_window must be null or a positive integer, got {}", class_name, w.dump()));
    o.sliding_window = w.get<int>();
  }
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.seed = config::seed(c);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

namespace {

MultiHeadAttentionOptions resolved_value_dim(MultiHeadAttentionOptions o, int key_dim) {
  if (o.value_dim == 0) o.value_dim = key_dim;
  return o;
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(int num_heads, int key_dim, MultiHeadAttentionOptions options)
    : HeadsAttention(num_heads, num_heads, key_dim, resolved_value_dim(std::move(options), key_dim), "multi_head_attention") {
  if (num_heads <= 0 || key_dim <= 0)
    throw std::invalid_argument(fmt::format("{}: num_heads and key_dim must be positive, got {} and {}", name(), num_heads, key_dim));
  if (options_.value_dim < 0 || options_.output_shape < 0)
    throw std::invalid_argument(fmt::format("{}: value_dim and output_shape must be positive", name()));
}

Json MultiHeadAttention::get_config() const {
  Json c = common_config();
  c["num_heads"] = query_heads_;
  c["key_dim"] = key_dim_;
  c["value_dim"] = options_.value_dim;
  c["output_shape"] = options_.output_shape > 0 ? Json(options_.output_shape) : Json(nullptr);
  c["attention_axes"] = Json::array({1});
  return c;
}

LayerPtr MultiHeadAttention::from_config(const Json& c) {
  config::check_keys(c, "MultiHeadAttention",
                     {"num_heads", "key_dim", "value_dim", "dropout", "use_bias", "use_gate", "output_shape", "attention_axes", "sliding_window",
                      "flash_attention", "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                      "activity_regularizer", "kernel_constraint", "bias_constraint", "seed"});
  for (const char* k : {"num_heads", "key_dim"})
    if (!c.contains(k) || !c.at(k).is_number_integer()) throw std::invalid_argument(fmt::format("MultiHeadAttention: '{}' must be an integer", k));
  if (c.contains("attention_axes") && !c.at("attention_axes").is_null() && c.at("attention_axes") != Json::array({1}) &&
      c.at("attention_axes") != Json(1))
    throw std::invalid_argument(fmt::format("MultiHeadAttention: attention_axes {} is not supported (only the steps axis, 1)", c.at("attention_axes").dump()));
  MultiHeadAttentionOptions o = common_options(c, "MultiHeadAttention");
  if (c.contains("value_dim") && c.at("value_dim").is_number_integer()) o.value_dim = c.at("value_dim").get<int>();
  if (c.contains("output_shape") && !c.at("output_shape").is_null()) {
    const Json& s = c.at("output_shape");
    if (s.is_number_integer()) o.output_shape = s.get<int>();
    else if (s.is_array() && s.size() == 1 && s[0].is_number_integer()) o.output_shape = s[0].get<int>();
    else throw std::invalid_argument(fmt::format("MultiHeadAttention: output_shape {} is not supported (one dimension only)", s.dump()));
  }
  return std::make_shared<MultiHeadAttention>(c.at("num_heads").get<int>(), c.at("key_dim").get<int>(), o);
}

namespace {

MultiHeadAttentionOptions with_head_dim(MultiHeadAttentionOptions o, int head_dim) {
  o.value_dim = head_dim;
  o.output_shape = 0;
  return o;
}

}  // namespace

GroupQueryAttention::GroupQueryAttention(int head_dim, int num_query_heads, int num_key_value_heads, MultiHeadAttentionOptions options)
    : HeadsAttention(num_query_heads, num_key_value_heads, head_dim, with_head_dim(std::move(options), head_dim), "grouped_query_attention") {
  if (head_dim <= 0 || num_query_heads <= 0 || num_key_value_heads <= 0)
    throw std::invalid_argument(fmt::format("{}: head_dim, num_query_heads and num_key_value_heads must be positive, got {}, {} and {}", name(),
                                            head_dim, num_query_heads, num_key_value_heads));
  if (num_query_heads % num_key_value_heads != 0)
    throw std::invalid_argument(fmt::format("{}: num_query_heads ({}) must be a multiple of num_key_value_heads ({})", name(), num_query_heads,
                                            num_key_value_heads));
}

Json GroupQueryAttention::get_config() const {
  Json c = common_config();
  c["head_dim"] = key_dim_;
  c["num_query_heads"] = query_heads_;
  c["num_key_value_heads"] = key_value_heads_;
  return c;
}

LayerPtr GroupQueryAttention::from_config(const Json& c) {
  config::check_keys(c, "GroupQueryAttention",
                     {"head_dim", "num_query_heads", "num_key_value_heads", "dropout", "use_bias", "use_gate", "sliding_window", "flash_attention",
                      "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                      "kernel_constraint", "bias_constraint", "seed"});
  for (const char* k : {"head_dim", "num_query_heads", "num_key_value_heads"})
    if (!c.contains(k) || !c.at(k).is_number_integer()) throw std::invalid_argument(fmt::format("GroupQueryAttention: '{}' must be an integer", k));
  return std::make_shared<GroupQueryAttention>(c.at("head_dim").get<int>(), c.at("num_query_heads").get<int>(),
                                               c.at("num_key_value_heads").get<int>(), common_options(c, "GroupQueryAttention"));
}

}  // namespace strata
