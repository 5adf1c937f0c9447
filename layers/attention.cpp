#include "layers/attention.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Tensor masked_softmax(const Tensor& scores, const Tensor& mask, bool zero_masked) {
  if (!mask.valid()) return ops::softmax(scores, -1);
  // scores * mask + (mask - 1) * 1e9 is the score where mask is 1 and exactly -1e9 where it is 0.
  const Tensor p = ops::softmax(ops::add(ops::multiply(scores, mask), ops::multiply(ops::subtract(mask, 1.f), 1e9f)), -1);
  return zero_masked ? ops::multiply(p, mask) : p;
}

Tensor causal_mask(const Tensor& like, std::int64_t rows, std::int64_t columns) {
  auto mask = std::make_shared<Variable>("causal_mask", Shape{1, rows, columns}, DType::float32, /*trainable=*/false);
  std::vector<float> values(static_cast<std::size_t>(rows * columns));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c <= std::min(r, columns - 1); ++c) values[std::size_t(r * columns + c)] = 1.f;
  mask->assign(values);
  return ops::variable(mask, like);
}

namespace {

// What both attention layers do with their scores (batch, Tq, Tv): masked value steps (and future ones with
// use_causal_mask) get no attention; the softmax, with dropout while training, weighs the values; masked
// query steps output zeros.
std::vector<Tensor> attend(const std::vector<Tensor>& inputs, const Tensor& scores, const std::map<std::string, bool>& flags,
                           const AttentionOptions& options, std::uint64_t seed) {
  const Tensor& query = inputs[0];
  const Tensor& value = inputs[1];
  const Tensor& key = inputs.size() > 2 ? inputs[2] : inputs[1];
  Tensor mask;
  if (const Tensor m = get_keras_mask(value); m.valid()) mask = ops::expand_dims(m, 1);
  if (flags.at("use_causal_mask")) {
    const Tensor c = causal_mask(query, query.shape()[1], key.shape()[1]);
    mask = mask.valid() ? ops::multiply(mask, c) : c;
  }
  const Tensor distribution = masked_softmax(scores, mask);
  const Tensor kept = options.dropout > 0.f ? ops::dropout(distribution, options.dropout, seed) : distribution;
  Tensor out = ops::matmul(kept, value);
  if (const Tensor m = get_keras_mask(query); m.valid()) out = ops::multiply(out, ops::expand_dims(m, 2));
  if (flags.at("return_attention_scores")) return {out, distribution};
  return {out};
}

}  // namespace

AttentionLayer::AttentionLayer(AttentionOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), options_(std::move(options)), seed_(options_.seed) {
  if (!(options_.dropout >= 0.f && options_.dropout < 1.f))
    throw std::invalid_argument(fmt::format("{}: dropout must be in [0, 1), got {}", name(), options_.dropout));
}

void AttentionLayer::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 2 && shapes.size() != 3)
    throw std::invalid_argument(fmt::format("{} '{}' takes [query, value] or [query, value, key], got {} inputs", class_name(), name(), shapes.size()));
  for (const Shape& s : shapes)
    if (s.rank() != 3) throw std::invalid_argument(fmt::format("{} '{}' takes (batch, steps, dim) inputs, got {}", class_name(), name(), s.to_string()));
  build_scores(shapes);
}

std::vector<Tensor> AttentionLayer::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  const Tensor& key = inputs.size() > 2 ? inputs[2] : inputs[1];
  return attend(inputs, scores(inputs[0], key), call_flags(call_arguments, {"return_attention_scores", "use_causal_mask"}), options_, seed_.value());
}

Json AttentionLayer::get_config() const {
  Json c = Layer::get_config();
  c["use_scale"] = options_.use_scale;
  c["dropout"] = options_.dropout;
  c["seed"] = seed_.config();
  return c;
}

AttentionOptions AttentionLayer::options_from_config(const Json& c, const char* class_name, bool use_scale) {
  if (c.value("causal", false))
    throw std::invalid_argument(fmt::format("{}: causal=true is Keras 2's; Keras 3 takes use_causal_mask when the layer is called", class_name));
  return AttentionOptions{.use_scale = c.value("use_scale", use_scale), .dropout = c.value("dropout", 0.f), .seed = config::seed(c),
                          .name = config::name(c), .trainable = config::trainable(c)};
}

Attention::Attention(AttentionOptions options) : AttentionLayer(std::move(options), "attention") {
  if (options_.score_mode != "dot" && options_.score_mode != "concat")
    throw std::invalid_argument(fmt::format("{}: score_mode must be \"dot\" or \"concat\", got \"{}\"", name(), options_.score_mode));
}

void Attention::build_scores(const std::vector<Shape>&) {
  if (options_.use_scale) scale_ = add_weight("scale", Shape(), "ones");
  if (options_.score_mode == "concat") concat_score_weight_ = add_weight("concat_score_weight", Shape(), "ones");
}

Tensor Attention::scores(const Tensor& query, const Tensor& key) {
  if (options_.score_mode == "dot") {
    const Tensor scores = ops::matmul(query, ops::transpose(key, {0, 2, 1}));  // (batch, Tq, Tv)
    return scale_ ? ops::multiply(scores, scale_) : scores;
  }
  // (batch, Tq, 1, dim) + (batch, 1, Tv, dim), summed over dim.
  Tensor sum = ops::add(ops::expand_dims(query, 2), ops::expand_dims(key, 1));
  if (scale_) sum = ops::multiply(sum, scale_);
  return ops::multiply(ops::sum(ops::tanh(sum), {3}), concat_score_weight_);
}

Json Attention::get_config() const {
  Json c = AttentionLayer::get_config();
  c["score_mode"] = options_.score_mode;
  return c;
}

LayerPtr Attention::from_config(const Json& c) {
  config::check_keys(c, "Attention", {"use_scale", "score_mode", "dropout", "seed", "causal"});
  AttentionOptions o = options_from_config(c, "Attention", false);
  o.score_mode = c.value("score_mode", std::string("dot"));
  return std::make_shared<Attention>(o);
}

AdditiveAttention::AdditiveAttention(AttentionOptions options) : AttentionLayer(std::move(options), "additive_attention") {}

void AdditiveAttention::build_scores(const std::vector<Shape>& shapes) {
  if (options_.use_scale) scale_ = add_weight("scale", Shape{shapes[0][2]}, "glorot_uniform");
}

Tensor AdditiveAttention::scores(const Tensor& query, const Tensor& key) {
  // (batch, Tq, 1, dim) + (batch, 1, Tv, dim) through tanh, weighed by the scale and summed over dim.
  Tensor terms = ops::tanh(ops::add(ops::expand_dims(query, 2), ops::expand_dims(key, 1)));
  if (scale_) terms = ops::multiply(terms, ops::reshape(ops::variable(scale_, query), {1, 1, 1, scale_->shape()[0]}));
  return ops::sum(terms, {3});
}

LayerPtr AdditiveAttention::from_config(const Json& c) {
  config::check_keys(c, "AdditiveAttention", {"use_scale", "dropout", "seed", "causal"});
  return std::make_shared<AdditiveAttention>(options_from_config(c, "AdditiveAttention", true));
}

}  // namespace strata
