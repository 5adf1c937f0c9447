// Embedding: a (input_dim, output_dim) table looked up by the integer value of each input element; with
// mask_zero, index 0 is padding and the output carries a mask that is 0 there. Masking: steps whose
// features all equal mask_value are zeroed and masked out. Layers downstream that support masks (the
// recurrent layers, GlobalAveragePooling1D, losses) skip the masked steps.
#pragma once

#include "layers/layer.h"

namespace strata {

struct EmbeddingOptions {
  Json embeddings_initializer = "uniform";
  bool mask_zero = false;
  std::string name;
  bool trainable = true;
};

class Embedding : public LayerBase<Embedding> {
 public:
  Embedding(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options = {});
  std::string class_name() const override { return "Embedding"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);
  const VariablePtr& embeddings() const { return embeddings_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;

 private:
  std::int64_t input_dim_, output_dim_;
  EmbeddingOptions options_;
  VariablePtr embeddings_;
};

struct MaskingOptions {
  float mask_value = 0.f;
  std::string name;
};

class Masking : public LayerBase<Masking> {
 public:
  explicit Masking(MaskingOptions options = {});
  std::string class_name() const override { return "Masking"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;

 private:
  // 1 where any feature of a step differs from mask_value: (batch, steps, ..., 1).
  Tensor keep(const Tensor& inputs) const;
  MaskingOptions options_;
};

}  // namespace strata
