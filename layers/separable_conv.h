// SeparableConv1D/2D: a depthwise convolution (strides, padding and dilation apply here) followed by a
// pointwise (1x1) convolution to `filters` channels, then bias and activation, with Keras's weights
// depthwise_kernel (kernel..., channels, depth_multiplier), pointwise_kernel (1..., channels * multiplier, filters), bias.
#pragma once

#include "layers/conv.h"

namespace strata {

struct SeparableConvOptions {
  IntTuple strides = 1;
  std::string padding = "valid";
  int depth_multiplier = 1;
  IntTuple dilation_rate = 1;
  std::string activation;
  bool use_bias = true;
  Json depthwise_initializer = "glorot_uniform";
  Json pointwise_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

class SeparableConv : public Layer {
 public:
  Json get_config() const override;
  int filters() const { return filters_; }

 protected:
  SeparableConv(int rank, int filters, const IntTuple& kernel_size, SeparableConvOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static SeparableConvOptions options_from_config(const Json& config, const std::string& class_name, int rank,
                                                  std::vector<int>& kernel_size, int& filters);

 private:
  int rank_, filters_;
  std::vector<int> kernel_size_, strides_, dilation_;
  SeparableConvOptions options_;
  VariablePtr depthwise_kernel_, pointwise_kernel_, bias_;
};

#define STRATA_SEPARABLE_CONV_LAYER(Class, rank, prefix)                                                      \
  class Class : public SeparableConv {                                                                        \
   public:                                                                                                    \
    Class(int filters, const IntTuple& kernel_size, SeparableConvOptions options = {})                       \
        : SeparableConv(rank, filters, kernel_size, std::move(options), prefix) {}                            \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      std::vector<int> kernel_size;                                                                           \
      int filters = 0;                                                                                        \
      SeparableConvOptions o = options_from_config(config, #Class, rank, kernel_size, filters);              \
      return std::make_shared<Class>(filters, kernel_size, o);                                                \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_SEPARABLE_CONV_LAYER(SeparableConv1D, 1, "separable_conv1d")
STRATA_SEPARABLE_CONV_LAYER(SeparableConv2D, 2, "separable_conv2d")
#undef STRATA_SEPARABLE_CONV_LAYER

}  // namespace strata
