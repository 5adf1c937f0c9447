// keras.layers.Attention (Luong-style): called on [query, value] or [query, value, key] of shapes
// (batch, Tq, dim), (batch, Tv, dim): scores = query . key (times `scale` with use_scale), or with
// score_mode "concat" concat_score_weight * sum(tanh(scale * (query + key))); the output is
// softmax(scores) . value, with dropout on the attention distribution while training.
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

class Attention : public LayerBase<Attention> {
 public:
  explicit Attention(AttentionOptions options = {});
  std::string class_name() const override { return "Attention"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  Tensor call_multi(const std::vector<Tensor>& inputs) override;

 private:
  AttentionOptions options_;
  std::uint64_t seed_;
  VariablePtr scale_, concat_score_weight_;
};

}  // namespace strata
