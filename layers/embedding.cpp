#include "layers/embedding.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/initializers.h"

namespace strata {

Embedding::Embedding(std::int64_t input_dim, std::int64_t output_dim, EmbeddingOptions options)
    : LayerBase(options.name, "embedding", options.trainable), input_dim_(input_dim), output_dim_(output_dim), options_(std::move(options)) {
  if (input_dim_ <= 0 || output_dim_ <= 0)
    throw std::invalid_argument(fmt::format("{}: input_dim and output_dim must be positive, got {} and {}", name(), input_dim_, output_dim_));
  get_initializer(options_.embeddings_initializer);
}

void Embedding::build(const Shape&) { embeddings_ = add_weight("embeddings", {input_dim_, output_dim_}, options_.embeddings_initializer); }

Tensor Embedding::call(const Tensor& inputs) {
  // Keras casts the inputs to integers; indices outside [0, input_dim) fail at run time naming the range.
  return ops::take(ops::variable(embeddings_, inputs), ops::cast(inputs, DType::int32), 0);
}

std::vector<Tensor> Embedding::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  if (options_.mask_zero) {
    const Tensor& ids = inputs[0];
    masks[0] = ops::not_equal(ids.dtype() == DType::float32 ? ids : ops::cast(ids, DType::float32), 0.f);
  }
  return masks;
}

Json Embedding::get_config() const {
  Json c = Layer::get_config();
  c["input_dim"] = input_dim_;
  c["output_dim"] = output_dim_;
  c["embeddings_initializer"] = get_initializer(options_.embeddings_initializer)->to_json();
  c["embeddings_regularizer"] = nullptr;
  c["activity_regularizer"] = nullptr;
  c["embeddings_constraint"] = nullptr;
  c["mask_zero"] = options_.mask_zero;
  return c;
}

LayerPtr Embedding::from_config(const Json& c) {
  config::check_keys(c, "Embedding", {"input_dim", "output_dim", "embeddings_initializer", "mask_zero", "input_length", "sparse"});
  if (!c.contains("input_dim") || !c.contains("output_dim")) throw std::invalid_argument("Embedding: 'input_dim' and 'output_dim' are required");
  EmbeddingOptions o;
  o.embeddings_initializer = config::initializer(c, "embeddings_initializer", "uniform");
  o.mask_zero = c.value("mask_zero", false);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Embedding>(c.at("input_dim").get<std::int64_t>(), c.at("output_dim").get<std::int64_t>(), o);
}

Masking::Masking(MaskingOptions options) : LayerBase(options.name, "masking"), options_(std::move(options)) {}

Tensor Masking::keep(const Tensor& inputs) const {
  return ops::max(ops::not_equal(inputs, options_.mask_value), {-1}, /*keepdims=*/true);
}

Tensor Masking::call(const Tensor& inputs) { return ops::multiply(inputs, keep(inputs)); }

std::vector<Tensor> Masking::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  masks[0] = ops::squeeze(keep(inputs[0]), -1);
  return masks;
}

Json Masking::get_config() const {
  Json c = Layer::get_config();
  c["mask_value"] = options_.mask_value;
  return c;
}

LayerPtr Masking::from_config(const Json& c) {
  config::check_keys(c, "Masking", {"mask_value"});
  MaskingOptions o;
  if (c.contains("mask_value") && !c.at("mask_value").is_null()) {
    if (!c.at("mask_value").is_number()) throw std::invalid_argument(fmt::format("Masking: mask_value must be a number, got {}", c.at("mask_value").dump()));
    o.mask_value = c.at("mask_value").get<float>();
  }
  o.name = config::name(c);
  return std::make_shared<Masking>(o);
}

}  // namespace strata
