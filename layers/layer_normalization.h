// LayerNormalization as Keras 3: each sample normalised over `axis` (default the last) by its own mean
// and variance, then scaled by gamma and shifted by beta (shaped like the normalised axes); with
// rms_scaling, Keras's variant without centring.
#pragma once

#include "layers/layer.h"

namespace strata {

struct LayerNormalizationOptions {
  std::vector<int> axis = {-1};
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
  bool rms_scaling = false;
  Json beta_initializer = "zeros";
  Json gamma_initializer = "ones";
  std::string name;
  bool trainable = true;
};

class LayerNormalization : public LayerBase<LayerNormalization> {
 public:
  explicit LayerNormalization(LayerNormalizationOptions options = {});
  std::string class_name() const override { return "LayerNormalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  LayerNormalizationOptions options_;
  std::vector<int> axes_;  // normalised against the input's rank, ascending
  VariablePtr gamma_, beta_;
};

}  // namespace strata
