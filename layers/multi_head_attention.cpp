#include "layers/multi_head_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "graph/ops.h"
#include "layers/attention.h"
#include "layers/initializers.h"

namespace strata {

MultiHeadAttention::MultiHeadAttention(int num_heads, int key_dim, MultiHeadAttentionOptions options)
    : LayerBase(options.name, "multi_head_attention", options.trainable), num_heads_(num_heads), key_dim_(key_dim),
      value_dim_(options.value_dim > 0 ? options.value_dim : key_dim), options_(std::move(options)),
      seed_(options_.seed) {
  if (num_heads_ <= 0 || key_dim_ <= 0)
    throw std::invalid_argument(fmt::format("{}: num_heads and key_dim must be positive, got {} and {}", name(), num_heads_, key_dim_));
  if (options_.value_dim < 0 || options_.output_shape < 0)
    throw std::invalid_argument(fmt::format("{}: value_dim and output_shape must be positive", name()));
  if (!(options_.dropout >= 0.f && options_.dropout < 1.f))
    throw std::invalid_argument(fmt::format("{}: dropout must be in [0, 1), got {}", name(), options_.dropout));
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void MultiHeadAttention::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 2 && shapes.size() != 3)
    throw std::invalid_argument(fmt::format("takes query and value, or query, value and key; got {} inputs", shapes.size()));
  for (const Shape& s : shapes)
    if (s.rank() != 3 || s[2] <= 0)
      throw std::invalid_argument(fmt::format("takes (batch, steps, features) inputs with known features, got {}", s.to_string()));
  const Shape& key_shape = shapes.size() == 3 ? shapes[2] : shapes[1];
  const std::int64_t h = num_heads_;
  auto projection = [&](const char* name, std::int64_t in, std::int64_t dim) {
    Projection p;
    p.kernel = add_weight(fmt::format("{}/kernel", name), {in, h, dim}, options_.kernel_initializer);
    if (options_.use_bias) p.bias = add_weight(fmt::format("{}/bias", name), {h, dim}, options_.bias_initializer);
    return p;
  };
  query_ = projection("query", shapes[0][2], key_dim_);
  key_ = projection("key", key_shape[2], key_dim_);
  value_ = projection("value", shapes[1][2], value_dim_);
  const std::int64_t out = options_.output_shape > 0 ? options_.output_shape : shapes[0][2];
  output_.kernel = add_weight("attention_output/kernel", {h, value_dim_, out}, options_.kernel_initializer);
  if (options_.use_bias) output_.bias = add_weight("attention_output/bias", {out}, options_.bias_initializer);
}

std::vector<Tensor> MultiHeadAttention::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  const auto flags = call_flags(call_arguments, {"return_attention_scores", "use_causal_mask"});
  const bool return_scores = flags.at("return_attention_scores"), causal = flags.at("use_causal_mask");
  if (inputs.size() != 2 && inputs.size() != 3)
    throw std::invalid_argument(fmt::format("layer '{}' (MultiHeadAttention) takes query and value, or query, value and key", name()));
  const Tensor& query = inputs[0];
  const Tensor& value = inputs[1];
  const Tensor& key = inputs.size() == 3 ? inputs[2] : inputs[1];
  const std::int64_t h = num_heads_;
  // (batch, T, d) -> (batch, heads, T, dim): one GEMM by the kernel read as (d, heads * dim).
  auto project = [&](const Tensor& x, const Projection& p, std::int64_t dim) {
    const std::int64_t steps = x.shape()[1];
    Tensor y = ops::matmul(x, ops::reshape(ops::variable(p.kernel, x), {x.shape()[2], h * dim}));
    if (p.bias) y = ops::add(y, ops::reshape(ops::variable(p.bias, x), {h * dim}));
    return ops::transpose(ops::reshape(y, {-1, steps, h, dim}), {0, 2, 1, 3});
  };
  // Keras scales the query, not the scores.
  const Tensor q = ops::multiply(project(query, query_, key_dim_), float(1.0 / std::sqrt(double(key_dim_))));
  const Tensor k = project(key, key_, key_dim_);
  const Tensor v = project(value, value_, value_dim_);
  const Tensor scores = ops::matmul(q, ops::transpose(k, {0, 1, 3, 2}));  // (batch, heads, T, S)

  // The attention mask (batch or 1, T, S): the query's, value's and key's masks and the causal one.
  const std::int64_t t = query.shape()[1], s = key.shape()[1];
  Tensor mask;
  auto combine = [&](const Tensor& m) { mask = mask.valid() ? ops::multiply(mask, m) : m; };
  if (const Tensor m = get_keras_mask(query); m.valid()) combine(ops::expand_dims(m, 2));
  if (const Tensor m = get_keras_mask(value); m.valid()) combine(ops::expand_dims(m, 1));
  if (inputs.size() == 3)
    if (const Tensor m = get_keras_mask(key); m.valid()) combine(ops::expand_dims(m, 1));
  if (causal) combine(causal_mask(query, t, s));
  // Keras computes the scores with its Softmax layer, which also zeroes the masked positions (a fully
  // masked row attends to nothing), when it returns them or applies dropout; otherwise with its fused
  // dot-product attention, which does not (a fully masked row attends uniformly). Both as Keras.
  const bool zero_masked = return_scores || options_.dropout > 0.f;
  Tensor probabilities = masked_softmax(scores, mask.valid() ? ops::expand_dims(mask, 1) : mask, zero_masked);
  const Tensor kept = options_.dropout > 0.f ? ops::dropout(probabilities, options_.dropout, seed_.value()) : probabilities;
  // (batch, heads, T, value_dim) -> (batch, T, heads * value_dim), then the output projection.
  const Tensor heads = ops::reshape(ops::transpose(ops::matmul(kept, v), {0, 2, 1, 3}), {-1, t, h * value_dim_});
  const std::int64_t out = output_.kernel->shape()[2];
  Tensor y = ops::matmul(heads, ops::reshape(ops::variable(output_.kernel, query), {h * value_dim_, out}));
  if (output_.bias) y = ops::add(y, output_.bias);
  if (return_scores) return {y, probabilities};
  return {y};
}

std::vector<Tensor> MultiHeadAttention::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  masks[0] = get_keras_mask(inputs[0]);  // the output keeps the query's mask; the scores have none
  return masks;
}

SavedVariableGroups MultiHeadAttention::saved_variable_groups() const {
  auto group = [](const Projection& p) {
    std::vector<VariablePtr> vars = {p.kernel};
    if (p.bias) vars.push_back(p.bias);
    return vars;
  };
  return {{"query_dense/vars", group(query_)}, {"key_dense/vars", group(key_)}, {"value_dense/vars", group(value_)},
          {"output_dense/vars", group(output_)}};
}

Json MultiHeadAttention::call_node(const std::vector<Json>& tensors, const Json& call_arguments) const {
  Json kwargs = Json::object();
  if (tensors.size() > 2) kwargs["key"] = tensors[2];
  for (const auto& [key, value] : call_arguments.items()) kwargs[key] = value;
  return {{"args", Json::array({tensors[0], tensors.size() > 1 ? tensors[1] : tensors[0]})}, {"kwargs", kwargs}};
}

Json MultiHeadAttention::get_config() const {
  Json c = Layer::get_config();
  c["num_heads"] = num_heads_;
  c["key_dim"] = key_dim_;
  c["value_dim"] = value_dim_;
  c["dropout"] = options_.dropout;
  c["use_bias"] = options_.use_bias;
  c["use_gate"] = false;
  c["output_shape"] = options_.output_shape > 0 ? Json(options_.output_shape) : Json(nullptr);
  c["attention_axes"] = Json::array({1});
  c["sliding_window"] = nullptr;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"}) c[k] = nullptr;
  c["seed"] = options_.seed ? Json(*options_.seed) : Json(nullptr);
  return c;
}

LayerPtr MultiHeadAttention::from_config(const Json& c) {
  config::check_keys(c, "MultiHeadAttention",
                     {"num_heads", "key_dim", "value_dim", "dropout", "use_bias", "use_gate", "output_shape", "attention_axes", "sliding_window",
                      "flash_attention", "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                      "activity_regularizer", "kernel_constraint", "bias_constraint", "seed"});
  for (const char* k : {"num_heads", "key_dim"})
    if (!c.contains(k) || !c.at(k).is_number_integer()) throw std::invalid_argument(fmt::format("MultiHeadAttention: '{}' must be an integer", k));
  if (c.value("use_gate", false)) throw std::invalid_argument("MultiHeadAttention: use_gate=true is not supported");
  if (c.contains("attention_axes") && !c.at("attention_axes").is_null() && c.at("attention_axes") != Json::array({1}) &&
      c.at("attention_axes") != Json(1))
    throw std::invalid_argument(fmt::format("MultiHeadAttention: attention_axes {} is not supported (only the steps axis, 1)", c.at("attention_axes").dump()));
  MultiHeadAttentionOptions o;
  if (c.contains("value_dim") && c.at("value_dim").is_number_integer()) o.value_dim = c.at("value_dim").get<int>();
  o.dropout = c.value("dropout", 0.f);
  o.use_bias = c.value("use_bias", true);
  if (c.contains("output_shape") && !c.at("output_shape").is_null()) {
    const Json& s = c.at("output_shape");
    if (s.is_number_integer()) o.output_shape = s.get<int>();
    else if (s.is_array() && s.size() == 1 && s[0].is_number_integer()) o.output_shape = s[0].get<int>();
    else throw std::invalid_argument(fmt::format("MultiHeadAttention: output_shape {} is not supported (one dimension only)", s.dump()));
  }
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.seed = config::seed(c);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<MultiHeadAttention>(c.at("num_heads").get<int>(), c.at("key_dim").get<int>(), o);
}

}  // namespace strata
