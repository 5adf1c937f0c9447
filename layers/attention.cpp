#include "layers/attention.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Attention::Attention(AttentionOptions options)
    : LayerBase(options.name, "attention", options.trainable), options_(std::move(options)),
      seed_(options_.seed ? *options_.seed : next_random_seed()) {
  if (options_.score_mode != "dot" && options_.score_mode != "concat")
    throw std::invalid_argument(fmt::format("{}: score_mode must be \"dot\" or \"concat\", got \"{}\"", name(), options_.score_mode));
  if (!(options_.dropout >= 0.f && options_.dropout < 1.f))
    throw std::invalid_argument(fmt::format("{}: dropout must be in [0, 1), got {}", name(), options_.dropout));
}

void Attention::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 2 && shapes.size() != 3)
    throw std::invalid_argument(fmt::format("Attention takes [query, value] or [query, value, key], got {} inputs", shapes.size()));
  for (const Shape& s : shapes)
    if (s.rank() != 3) throw std::invalid_argument(fmt::format("Attention takes (batch, steps, dim) inputs, got {}", s.to_string()));
  if (options_.use_scale) scale_ = add_weight("scale", Shape(), "ones");
  if (options_.score_mode == "concat") concat_score_weight_ = add_weight("concat_score_weight", Shape(), "ones");
}

Tensor Attention::call_multi(const std::vector<Tensor>& inputs) {
  if (inputs.size() != 2 && inputs.size() != 3)
    throw std::invalid_argument(fmt::format("Attention '{}' takes [query, value] or [query, value, key]", name()));
  const Tensor& query = inputs[0];
  const Tensor& value = inputs[1];
  const Tensor& key = inputs.size() > 2 ? inputs[2] : inputs[1];
  Tensor scores;
  if (options_.score_mode == "dot") {
    scores = ops::matmul(query, ops::transpose(key, {0, 2, 1}));  // (batch, Tq, Tv)
    if (scale_) scores = ops::multiply(scores, scale_);
  } else {
    // (batch, Tq, 1, dim) + (batch, 1, Tv, dim), summed over dim.
    Tensor sum = ops::add(ops::expand_dims(query, 2), ops::expand_dims(key, 1));
    if (scale_) sum = ops::multiply(sum, scale_);
    scores = ops::multiply(ops::sum(ops::tanh(sum), {3}), concat_score_weight_);
  }
  Tensor distribution = ops::softmax(scores, -1);
  if (options_.dropout > 0.f) distribution = ops::dropout(distribution, options_.dropout, seed_);
  return ops::matmul(distribution, value);
}

Json Attention::get_config() const {
  Json c = Layer::get_config();
  c["use_scale"] = options_.use_scale;
  c["score_mode"] = options_.score_mode;
  c["dropout"] = options_.dropout;
  c["seed"] = options_.seed ? Json(*options_.seed) : Json(nullptr);
  return c;
}

LayerPtr Attention::from_config(const Json& c) {
  config::check_keys(c, "Attention", {"use_scale", "score_mode", "dropout", "seed", "causal"});
  if (c.value("causal", false)) throw std::invalid_argument("Attention: causal=true (Keras 2's causal masking) needs masks, which Strata does not carry yet");
  AttentionOptions o;
  o.use_scale = c.value("use_scale", false);
  o.score_mode = c.value("score_mode", std::string("dot"));
  o.dropout = c.value("dropout", 0.f);
  if (c.contains("seed") && c.at("seed").is_number_integer()) o.seed = c.at("seed").get<std::uint64_t>();
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Attention>(o);
}

}  // namespace strata
