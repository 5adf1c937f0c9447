// UpSampling1D/2D/3D (channels_last): each step, row, column (and plane) repeated `size` times ("nearest"), or for 2-D
// the images resized as Keras does for its other interpolations (ops::image::resize: bilinear, bicubic,
// lanczos3, lanczos5).
#pragma once

#include "layers/conv.h"

namespace strata {

struct UpSamplingOptions {
  std::string interpolation = "nearest";  // 2-D only also "bilinear", "bicubic", "lanczos3" or "lanczos5"
  std::string name;
  bool trainable = true;
};

class UpSampling : public Layer {
 public:
  Json get_config() const override;

 protected:
  UpSampling(int rank, const IntTuple& size, UpSamplingOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static UpSamplingOptions options_from_config(const Json& config, const std::string& class_name, int rank, std::vector<int>& size);

 private:
  int rank_;
  std::vector<int> size_;
  UpSamplingOptions options_;
};

#define STRATA_UP_SAMPLING_LAYER(Class, rank, prefix)                                                         \
  class Class : public UpSampling {                                                                           \
   public:                                                                                                    \
    explicit Class(const IntTuple& size = 2, UpSamplingOptions options = {})                                 \
        : UpSampling(rank, size, std::move(options), prefix) {}                                               \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      std::vector<int> size;                                                                                  \
      UpSamplingOptions o = options_from_config(config, #Class, rank, size);                                 \
      return std::make_shared<Class>(size, o);                                                                \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_UP_SAMPLING_LAYER(UpSampling1D, 1, "up_sampling1d")
STRATA_UP_SAMPLING_LAYER(UpSampling2D, 2, "up_sampling2d")
STRATA_UP_SAMPLING_LAYER(UpSampling3D, 3, "up_sampling3d")
#undef STRATA_UP_SAMPLING_LAYER

}  // namespace strata
