// MultiHeadAttention and GroupQueryAttention as Keras 3. Query, value and key (default: value) of shapes
// (batch, T, dq), (batch, S, dv), (batch, S, dk) are projected per head by kernels (d, heads, dim) with
// biases (heads, dim); scores softmax(q k / sqrt(key_dim)) over S, with dropout while training; the heads'
// outputs (gated by sigmoid(query projected per head) with use_gate) are projected back by a kernel
// (heads, value_dim, output) and a bias. GroupQueryAttention projects the key and value to fewer heads,
// each shared by num_query_heads / num_key_value_heads consecutive query heads (keras.ops.repeat).
// Masks on the query, value and key tensors, use_causal_mask and sliding_window (key steps less than
// sliding_window from the query step) hide positions, as in Keras; with return_attention_scores the layer
// also returns the scores (batch, heads, T, S). Called as mha.apply({query, value}) or ({query, value, key}),
// with call arguments such as {{"use_causal_mask", true}, {"return_attention_scores", true}};
// mha({query, value}) for the output alone.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct MultiHeadAttentionOptions {
  int value_dim = 0;    // 0: key_dim
  float dropout = 0.f;
  bool use_bias = true;
  int output_shape = 0;    // 0: the query's last dimension
  int sliding_window = 0;  // 0: every key step
  bool use_gate = false;
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::optional<std::uint64_t> seed;
  std::string name;
  bool trainable = true;
};

// What both layers are: the projections, the masks, the attention per head.
class HeadsAttention : public Layer {
 public:
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  std::vector<std::string> tensor_keywords() const override { return {"key"}; }
  SavedVariableGroups saved_variable_groups() const override;

 protected:
  // `options.value_dim` and `output_shape` already resolved (output 0: the query's features).
  HeadsAttention(int query_heads, int key_value_heads, int key_dim, MultiHeadAttentionOptions options, const char* prefix);
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;
  // Keras names a saved group after the attribute holding the sublayer: MultiHeadAttention's are public
  // properties (query_dense), GroupQueryAttention's private members (_query_dense); the gate is private in both.
  virtual std::string sublayer_attribute_prefix() const { return ""; }
  // The keys both configs write (dropout, use_bias, use_gate, sliding_window, initializers, seed...).
  Json common_config() const;
  // The same keys read back (value_dim and output_shape left to the caller).
  static MultiHeadAttentionOptions common_options(const Json& config, const char* class_name);

  int query_heads_, key_value_heads_, key_dim_;
  MultiHeadAttentionOptions options_;
  LayerSeed seed_;
  struct Projection {
    VariablePtr kernel, bias;
  };
  Projection query_, key_, gate_, value_, output_;
};

class MultiHeadAttention : public HeadsAttention {
 public:
  MultiHeadAttention(int num_heads, int key_dim, MultiHeadAttentionOptions options = {});
  std::string class_name() const override { return "MultiHeadAttention"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<MultiHeadAttention>(std::move(*this)); }
};

// keras.layers.GroupQueryAttention: head_dim for the query, key and value heads alike, the output of the
// query's features. options.value_dim and output_shape are not its own (left 0).
class GroupQueryAttention : public HeadsAttention {
 public:
  GroupQueryAttention(int head_dim, int num_query_heads, int num_key_value_heads, MultiHeadAttentionOptions options = {});
  std::string class_name() const override { return "GroupQueryAttention"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<GroupQueryAttention>(std::move(*this)); }
  std::string sublayer_attribute_prefix() const override { return "_"; }
};

}  // namespace strata
