// Normalization: (x - mean) / max(sqrt(variance), 1e-7) per position of the kept axes (the last by default),
// or the inverse with invert. mean and variance come from the config (no weights, as Keras) or from adapt()
// on data, which fills the weights mean, variance and count that Keras's files hold for it.
#pragma once

#include <optional>

#include "api/array.h"
#include "layers/layer.h"

namespace strata {

struct NormalizationOptions {
  std::vector<int> axis = {-1};  // the axes that keep their own statistics; empty: one mean and variance for all
  std::optional<config::NumberArray> mean = std::nullopt, variance = std::nullopt;  // both or neither; they broadcast against the kept axes
  bool invert = false;
  std::string name;
  bool trainable = true;
};

class Normalization : public LayerBase<Normalization> {
 public:
  explicit Normalization(NormalizationOptions options = {});
  std::string class_name() const override { return "Normalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

  // Sets mean and variance (the population variance) from `data` (samples, ...), as keras's adapt() on an
  // array. Before the layer is built, the values wait for build().
  void adapt(const Array& data);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  // The kept axes of an input of `rank` dimensions, sorted and non-negative.
  std::vector<int> kept_axes(int rank) const;

  NormalizationOptions options_;
  std::vector<int> kept_;
  Shape broadcast_shape_;  // the input's rank: the kept dimensions, 1 elsewhere
  VariablePtr mean_, variance_, count_;
  std::optional<std::pair<std::vector<float>, std::vector<float>>> adapted_;  // from adapt() before build()
};

}  // namespace strata
