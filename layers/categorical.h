// Keras's categorical preprocessing: Discretization (bucket indices of numbers from bin boundaries) and
// CategoryEncoding (one-hot, multi-hot or count vectors of integer categories). Both are compositions of
// comparisons and reductions, without weights; their inputs are data, so no gradient flows through them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace strata {

// What the encoding layers output: "int" (Discretization only: the bucket index), "one_hot" (a vector per
// value), "multi_hot" (1 for each category present along axis 1, Keras's "binary") or "count".
enum class CategoricalOutput { integer, one_hot, multi_hot, count };

struct DiscretizationOptions {
  std::vector<double> bin_boundaries;  // increasing; values below the first go to bucket 0 (compared in float32)
  std::string output_mode = "int";
  std::optional<int> num_bins;  // Keras's adapt() target; without boundaries the layer cannot run
  double epsilon = 0.01;        // kept for Keras's config
  std::string name;
};

class Discretization : public LayerBase<Discretization> {
 public:
  explicit Discretization(DiscretizationOptions options);
  std::string class_name() const override { return "Discretization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  DiscretizationOptions options_;
  CategoricalOutput mode_;
  VariablePtr boundaries_;  // graph operands, not weights (Keras keeps the boundaries in the config)
  VariablePtr buckets_;     // 0 .. number of boundaries
};

struct CategoryEncodingOptions {
  std::string output_mode = "multi_hot";
  std::string name;
};

class CategoryEncoding : public LayerBase<CategoryEncoding> {
 public:
  CategoryEncoding(std::int64_t num_tokens, CategoryEncodingOptions options = {});
  std::string class_name() const override { return "CategoryEncoding"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::int64_t num_tokens_;
  CategoricalOutput mode_;
  VariablePtr tokens_;  // 0 .. num_tokens - 1, compared with the inputs
};

}  // namespace strata
