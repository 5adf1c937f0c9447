// InputLayer and Input(): the entry point of a model, a placeholder of a given shape.
#pragma once

#include "layers/layer.h"

namespace strata {

struct InputOptions {
  std::string name;
  std::int64_t batch_size = -1;  // -1: unknown (None)
  DType dtype = DType::float32;
};

class InputLayer : public LayerBase<InputLayer> {
 public:
  // `shape` excludes the batch dimension, as keras.Input(shape=...); -1 is a size unknown until the model runs (None).
  explicit InputLayer(Shape shape, InputOptions options = {});
  std::string class_name() const override { return "InputLayer"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

  const Shape& batch_shape() const { return batch_shape_; }
  DType dtype() const { return dtype_; }
  // The placeholder this layer feeds (created on first use, in the default graph).
  Tensor output();

 protected:
  Tensor call(const Tensor& inputs) override { return inputs; }

 private:
  Shape batch_shape_;
  DType dtype_;
  // Weak: the graph records this layer's call (holding the layer), so a strong reference back would keep
  // both alive for ever.
  std::weak_ptr<Graph> graph_;
  ValueId output_ = -1;
};

// keras.Input: a symbolic tensor to call layers on, owned by a new InputLayer.
Tensor Input(Shape shape, InputOptions options = {});

}  // namespace strata
