// ZeroPadding1D/2D/3D and Cropping1D/2D/3D (channels_last): zeros added around, or rows and columns cut from, the
// spatial axes; `padding`/`cropping` as Keras takes them (see SpatialPairs).
#pragma once

#include "layers/layer.h"
#include "layers/spatial_pairs.h"

namespace strata {

// Pads (zeros) or crops the spatial axes of a rank + 2 input.
class SpatialResize : public Layer {
 public:
  Json get_config() const override;

 protected:
  SpatialResize(bool crop, int rank, const SpatialPairs& amounts, const LayerOptions& options, const char* prefix);
  Tensor call(const Tensor& inputs) override;
  static SpatialPairs amounts_from_config(const Json& config, const std::string& class_name, bool crop, const SpatialPairs& fallback);

 private:
  bool crop_;
  int rank_;
  std::vector<std::array<int, 2>> amounts_;
};

#define STRATA_SPATIAL_RESIZE_LAYER(Class, crop, rank, prefix, default_amount)                                \
  class Class : public SpatialResize {                                                                        \
   public:                                                                                                    \
    explicit Class(const SpatialPairs& amounts = default_amount, LayerOptions options = {})                  \
        : SpatialResize(crop, rank, amounts, options, prefix) {}                                              \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      const SpatialPairs amounts = amounts_from_config(config, #Class, crop, default_amount);                                \
      return std::make_shared<Class>(amounts, LayerOptions{config::name(config), config::trainable(config)}); \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_SPATIAL_RESIZE_LAYER(ZeroPadding1D, false, 1, "zero_padding1d", 1)
STRATA_SPATIAL_RESIZE_LAYER(ZeroPadding2D, false, 2, "zero_padding2d", 1)
STRATA_SPATIAL_RESIZE_LAYER(Cropping1D, true, 1, "cropping1d", 1)
STRATA_SPATIAL_RESIZE_LAYER(Cropping2D, true, 2, "cropping2d", 0)
STRATA_SPATIAL_RESIZE_LAYER(ZeroPadding3D, false, 3, "zero_padding3d", 1)
STRATA_SPATIAL_RESIZE_LAYER(Cropping3D, true, 3, "cropping3d", 1)
#undef STRATA_SPATIAL_RESIZE_LAYER

}  // namespace strata
