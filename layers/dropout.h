// Dropout: inverted dropout while training (kept values scaled by 1 / (1 - rate)), identity otherwise.
// SpatialDropout1D/2D/3D drop whole channels (one draw per sample and channel), as Keras's.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct DropoutOptions {
  std::optional<std::uint64_t> seed;  // unset: drawn from the global seed
  std::vector<std::int64_t> noise_shape;  // Dropout only; empty: the input's shape, -1: the input's dimension
  std::string name;
  bool trainable = true;
};

class Dropout : public LayerBase<Dropout> {
 public:
  explicit Dropout(float rate, DropoutOptions options = {});
  std::string class_name() const override { return "Dropout"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  float rate_;
  LayerSeed seed_;
  std::vector<std::int64_t> noise_shape_;
};

class SpatialDropout : public Layer {
 public:
  Json get_config() const override;

 protected:
  SpatialDropout(int rank, float rate, const DropoutOptions& options, const char* prefix);
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }
  static DropoutOptions options_from_config(const Json& config, const std::string& class_name, float& rate);

 private:
  int rank_;
  float rate_;
  LayerSeed seed_;
};

#define STRATA_SPATIAL_DROPOUT_LAYER(Class, rank, prefix)                                                     \
  class Class : public SpatialDropout {                                                                       \
   public:                                                                                                    \
    explicit Class(float rate, DropoutOptions options = {}) : SpatialDropout(rank, rate, options, prefix) {} \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      float rate = 0.f;                                                                                       \
      DropoutOptions o = options_from_config(config, #Class, rate);                                          \
      return std::make_shared<Class>(rate, o);                                                                \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_SPATIAL_DROPOUT_LAYER(SpatialDropout1D, 1, "spatial_dropout1d")
STRATA_SPATIAL_DROPOUT_LAYER(SpatialDropout2D, 2, "spatial_dropout2d")
STRATA_SPATIAL_DROPOUT_LAYER(SpatialDropout3D, 3, "spatial_dropout3d")
#undef STRATA_SPATIAL_DROPOUT_LAYER

}  // namespace strata
