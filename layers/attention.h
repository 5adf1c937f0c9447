// keras.layers.Attention (Luong-style): called on [query, value] or [query, value, key] of shapes
// (batch, Tq, dim), (batch, Tv, dim): scores = query . key (times `scale` with use_scale), or with
// score_mode "concat" concat_score_weight * sum(tanh(scale * (query + key))); the output is
// softmax(scores) . value, with dropout on the attention distribution while training. Masked value steps
// get no attention and masked query steps output zeros, as in Keras; call arguments use_causal_mask and
// return_attention_scores (which adds the distribution as a second output) as Keras's.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct AttentionOptions {
  bool use_scale = false;
  std::string score_mode = "dot";  // or "concat"
  float dropout = 0.f;
  std::optional<std::uint64_t> seed;
  std::string name;
  bool trainable = true;
};

// softmax over the last axis with positions where `mask` (broadcast against scores; invalid: none) is 0
// set to -1e9 first, as Keras's masked softmax; with zero_masked (Keras's Softmax layer) those positions
// are zero afterwards too.
Tensor masked_softmax(const Tensor& scores, const Tensor& mask, bool zero_masked = false);
// Keras's causal mask: 1 where column <= row, shaped (1, rows, columns), in the graph of `like`.
Tensor causal_mask(const Tensor& like, std::int64_t rows, std::int64_t columns);

// What Attention and AdditiveAttention share: [query, value] or [query, value, key] inputs of rank 3, the
// options, and what is done with the scores (masks, the softmax, dropout, the weighted values).
class AttentionLayer : public Layer {
 public:
  Json get_config() const override;

 protected:
  AttentionLayer(AttentionOptions options, const char* prefix);
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  // The layer's weights, built for `input_shapes` (already checked).
  virtual void build_scores(const std::vector<Shape>& input_shapes) = 0;
  // The scores (batch, Tq, Tv) of `query` (batch, Tq, dim) against `key` (batch, Tv, dim).
  virtual Tensor scores(const Tensor& query, const Tensor& key) = 0;
  // The inputs of from_config common to both: dropout, seed, name, trainable; use_scale defaults to `use_scale`.
  static AttentionOptions options_from_config(const Json& config, const char* class_name, bool use_scale);

  AttentionOptions options_;
  LayerSeed seed_;
};

class Attention : public AttentionLayer {
 public:
  explicit Attention(AttentionOptions options = {});
  std::string class_name() const override { return "Attention"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Attention>(std::move(*this)); }
  void build_scores(const std::vector<Shape>& input_shapes) override;
  Tensor scores(const Tensor& query, const Tensor& key) override;

 private:
  VariablePtr scale_, concat_score_weight_;
};

// keras.layers.AdditiveAttention (Bahdanau-style): as Attention, with scores sum(scale * tanh(query + key))
// over dim, `scale` a learned vector of dim values (glorot_uniform) with use_scale (the default), else 1.
class AdditiveAttention : public AttentionLayer {
 public:
  explicit AdditiveAttention(AttentionOptions options = {.use_scale = true});
  std::string class_name() const override { return "AdditiveAttention"; }
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<AdditiveAttention>(std::move(*this)); }
  void build_scores(const std::vector<Shape>& input_shapes) override;
  Tensor scores(const Tensor& query, const Tensor& key) override;

 private:
  VariablePtr scale_;
};

}  // namespace strata
