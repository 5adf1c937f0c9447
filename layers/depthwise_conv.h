// DepthwiseConv1D/2D: each input channel convolved with its own depth_multiplier filters (kernel
// (kernel..., channels, depth_multiplier) as Keras stores it; output channel c * depth_multiplier + m).
#pragma once

#include "layers/conv.h"

namespace strata {

struct DepthwiseConvOptions {
  IntTuple strides = 1;
  std::string padding = "valid";
  int depth_multiplier = 1;
  IntTuple dilation_rate = 1;
  std::string activation;
  bool use_bias = true;
  Json depthwise_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

class DepthwiseConv : public Layer {
 public:
  Json get_config() const override;
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& bias() const { return bias_; }

 protected:
  DepthwiseConv(int rank, const IntTuple& kernel_size, DepthwiseConvOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static DepthwiseConvOptions options_from_config(const Json& config, const std::string& class_name, int rank,
                                                  std::vector<int>& kernel_size);

 private:
  int rank_;
  std::vector<int> kernel_size_, strides_, dilation_;
  DepthwiseConvOptions options_;
  VariablePtr kernel_, bias_;
};

#define STRATA_DEPTHWISE_CONV_LAYER(Class, rank, prefix)                                                      \
  class Class : public DepthwiseConv {                                                                        \
   public:                                                                                                    \
    explicit Class(const IntTuple& kernel_size, DepthwiseConvOptions options = {})                           \
        : DepthwiseConv(rank, kernel_size, std::move(options), prefix) {}                                     \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      std::vector<int> kernel_size;                                                                           \
      DepthwiseConvOptions o = options_from_config(config, #Class, rank, kernel_size);                       \
      return std::make_shared<Class>(kernel_size, o);                                                         \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_DEPTHWISE_CONV_LAYER(DepthwiseConv1D, 1, "depthwise_conv1d")
STRATA_DEPTHWISE_CONV_LAYER(DepthwiseConv2D, 2, "depthwise_conv2d")
#undef STRATA_DEPTHWISE_CONV_LAYER

}  // namespace strata
