// Adaptive pooling (channels_last): AdaptiveAveragePooling1D/2D/3D and AdaptiveMaxPooling1D/2D/3D pool each
// spatial axis of length L into `output_size` windows, window i covering [floor(i L / n), ceil((i + 1) L / n)),
// as Keras 3 and PyTorch's AdaptiveAvgPool do. The windows are rectangular, so the pooling runs one axis at
// a time: a slice and a reduction per window.
#pragma once

#include "layers/conv.h"

namespace strata {

struct AdaptivePoolingOptions {
  std::string name;
  bool trainable = true;
};

class AdaptivePooling : public Layer {
 public:
  Json get_config() const override;

 protected:
  AdaptivePooling(bool max, int rank, const IntTuple& output_size, AdaptivePoolingOptions options, const char* prefix);
  Tensor call(const Tensor& inputs) override;
  static std::vector<int> output_size_from_config(const Json& config, const std::string& class_name, int rank);

 private:
  bool max_;
  int rank_;
  std::vector<int> output_size_;
};

#define STRATA_ADAPTIVE_POOLING_LAYER(Class, is_max, rank, prefix)                                             \
  class Class : public AdaptivePooling {                                                                       \
   public:                                                                                                    \
    explicit Class(const IntTuple& output_size, AdaptivePoolingOptions options = {})                          \
        : AdaptivePooling(is_max, rank, output_size, std::move(options), prefix) {}                           \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      return std::make_shared<Class>(output_size_from_config(config, #Class, rank),                          \
                                     AdaptivePoolingOptions{config::name(config), config::trainable(config)}); \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveAveragePooling1D, false, 1, "adaptive_average_pooling1d")
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveAveragePooling2D, false, 2, "adaptive_average_pooling2d")
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveAveragePooling3D, false, 3, "adaptive_average_pooling3d")
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveMaxPooling1D, true, 1, "adaptive_max_pooling1d")
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveMaxPooling2D, true, 2, "adaptive_max_pooling2d")
STRATA_ADAPTIVE_POOLING_LAYER(AdaptiveMaxPooling3D, true, 3, "adaptive_max_pooling3d")
#undef STRATA_ADAPTIVE_POOLING_LAYER

}  // namespace strata
