// MultiHeadAttention as Keras 3: query, value and key (default: value) of shapes (batch, T, dq),
// (batch, S, dv), (batch, S, dk) are projected per head by kernels (d, heads, key_dim) / (d, heads,
// value_dim) with biases (heads, dim); scores softmax(q k / sqrt(key_dim)) over S, with dropout while
// training; the heads' outputs are projected back by a kernel (heads, value_dim, output) and a bias.
// Masks on the query, value and key tensors and use_causal_mask hide positions, as in Keras; with
// return_attention_scores the layer also returns the scores (batch, heads, T, S). Called as
// mha.apply({query, value}) or ({query, value, key}), with call arguments such as
// {{"use_causal_mask", true}, {"return_attention_scores", true}}; mha({query, value}) for the output alone.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct MultiHeadAttentionOptions {
  int value_dim = 0;    // 0: key_dim
  float dropout = 0.f;
  bool use_bias = true;
  int output_shape = 0;  // 0: the query's last dimension
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::optional<std::uint64_t> seed;
  std::string name;
  bool trainable = true;
};

class MultiHeadAttention : public LayerBase<MultiHeadAttention> {
 public:
  MultiHeadAttention(int num_heads, int key_dim, MultiHeadAttentionOptions options = {});
  std::string class_name() const override { return "MultiHeadAttention"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  std::vector<std::string> tensor_keywords() const override { return {"key"}; }
  SavedVariableGroups saved_variable_groups() const override;

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;

 private:
  int num_heads_, key_dim_, value_dim_;
  MultiHeadAttentionOptions options_;
  LayerSeed seed_;
  struct Projection {
    VariablePtr kernel, bias;
  };
  Projection query_, key_, value_, output_;
};

}  // namespace strata
