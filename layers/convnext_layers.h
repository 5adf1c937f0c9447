// The two layers Keras's ConvNeXt applications define for themselves (keras.src.applications.convnext), so
// that those models load: LayerScale, the input times a learned per-channel gamma (initialised to
// init_values), and StochasticDepth, which while training keeps each sample's residual branch with
// probability 1 - drop_path_rate (scaled by its inverse) and passes it unchanged otherwise.
#pragma once

#include "layers/layer.h"

namespace strata {

class LayerScale : public LayerBase<LayerScale> {
 public:
  LayerScale(float init_values, std::int64_t projection_dim, LayerOptions options = {});
  std::string class_name() const override { return "LayerScale"; }
  std::string keras_module() const override { return "keras.src.applications.convnext"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;

 private:
  float init_values_;
  std::int64_t projection_dim_;
  VariablePtr gamma_;
};

class StochasticDepth : public LayerBase<StochasticDepth> {
 public:
  explicit StochasticDepth(float drop_path_rate, LayerOptions options = {});
  std::string class_name() const override { return "StochasticDepth"; }
  std::string keras_module() const override { return "keras.src.applications.convnext"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  float rate_;
  std::uint64_t seed_;
};

}  // namespace strata
