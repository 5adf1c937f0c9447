// Conv1DTranspose/Conv2DTranspose/Conv3DTranspose (channels_last): the adjoint of a convolution, kernel (kernel..., filters,
// in_channels) as Keras stores it; output size (in - 1) * stride + dilated kernel for "valid", in * stride for
// "same", each changed by output_padding as in Keras.
#pragma once

#include <optional>

#include "layers/conv.h"

namespace strata {

struct ConvTransposeOptions {
  IntTuple strides = 1;
  std::string padding = "valid";
  std::optional<IntTuple> output_padding;  // unset: Keras's default
  IntTuple dilation_rate = 1;
  std::string activation;
  bool use_bias = true;
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

class ConvTranspose : public Layer {
 public:
  Json get_config() const override;
  int filters() const { return filters_; }
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& bias() const { return bias_; }

 protected:
  ConvTranspose(int rank, int filters, const IntTuple& kernel_size, ConvTransposeOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static ConvTransposeOptions options_from_config(const Json& config, const std::string& class_name, int rank,
                                                  std::vector<int>& kernel_size, int& filters);

 private:
  int rank_, filters_;
  std::vector<int> kernel_size_, strides_, dilation_, output_padding_;
  ConvTransposeOptions options_;
  VariablePtr kernel_, bias_;
};

#define STRATA_CONV_TRANSPOSE_LAYER(Class, rank, prefix)                                                      \
  class Class : public ConvTranspose {                                                                        \
   public:                                                                                                    \
    Class(int filters, const IntTuple& kernel_size, ConvTransposeOptions options = {})                       \
        : ConvTranspose(rank, filters, kernel_size, std::move(options), prefix) {}                            \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      std::vector<int> kernel_size;                                                                           \
      int filters = 0;                                                                                        \
      ConvTransposeOptions o = options_from_config(config, #Class, rank, kernel_size, filters);              \
      return std::make_shared<Class>(filters, kernel_size, o);                                                \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_CONV_TRANSPOSE_LAYER(Conv1DTranspose, 1, "conv1d_transpose")
STRATA_CONV_TRANSPOSE_LAYER(Conv2DTranspose, 2, "conv2d_transpose")
STRATA_CONV_TRANSPOSE_LAYER(Conv3DTranspose, 3, "conv3d_transpose")
#undef STRATA_CONV_TRANSPOSE_LAYER

}  // namespace strata
