// Conv1D and Conv2D (channels_last), with Keras's kernel layout (kernel..., in / groups, filters), strides,
// "valid"/"same" padding (TensorFlow's rule: the odd pixel goes last), dilation, groups and activation.
#pragma once

#include <initializer_list>
#include <vector>

#include "layers/layer.h"

namespace strata {

// An int or a tuple, as Keras's kernel_size/strides arguments: Conv2D(32, 3) or Conv2D(32, {3, 5}).
class IntTuple {
 public:
  IntTuple(int v) : values_{v} {}                                   // NOLINT: implicit on purpose
  IntTuple(std::initializer_list<int> v) : values_(v) {}            // NOLINT
  IntTuple(std::vector<int> v) : values_(std::move(v)) {}           // NOLINT
  // The tuple for `rank` spatial dimensions; one value stands for all of them.
  std::vector<int> expand(int rank, const char* what) const;

 private:
  std::vector<int> values_;
};

// The keys every convolution layer shares, read from a Keras config (check_keys is the caller's).
struct ConvConfig {
  std::vector<int> kernel_size, strides, dilation_rate;
  std::string padding, activation, name;
  bool use_bias = true, trainable = true;
};
ConvConfig read_conv_config(const Json& config, const std::string& class_name, int rank);
// kernel_size, strides, padding, data_format, dilation_rate as Keras writes them.
void write_conv_window(Json& config, const std::vector<int>& kernel_size, const std::vector<int>& strides,
                       const std::string& padding, const std::vector<int>& dilation_rate);
// Keras's name for an activation in a config: "linear" for none.
std::string activation_config_name(const std::string& activation);
// Throws naming the layer unless every size is positive and padding is "valid" or "same".
void check_conv_window(const std::string& layer, const std::vector<int>& kernel_size, const std::vector<int>& strides,
                       const std::vector<int>& dilation_rate, const std::string& padding);

struct ConvOptions {
  IntTuple strides = 1;
  std::string padding = "valid";
  IntTuple dilation_rate = 1;
  int groups = 1;
  std::string activation;
  bool use_bias = true;
  Json kernel_initializer = "glorot_uniform";
  Json bias_initializer = "zeros";
  std::string name;
  bool trainable = true;
};

// The convolution of `rank` spatial dimensions; Conv1D and Conv2D name it.
class Conv : public Layer {
 public:
  Json get_config() const override;
  int filters() const { return filters_; }
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& bias() const { return bias_; }

 protected:
  Conv(int rank, int filters, const IntTuple& kernel_size, ConvOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static ConvOptions options_from_config(const Json& config, const std::string& class_name, int rank,
                                         std::vector<int>& kernel_size, int& filters);

 private:
  bool causal() const { return rank_ == 1 && options_.padding == "causal"; }
  int rank_, filters_;
  std::vector<int> kernel_size_, strides_, dilation_;
  ConvOptions options_;
  VariablePtr kernel_, bias_;
};

class Conv1D : public Conv {
 public:
  Conv1D(int filters, const IntTuple& kernel_size, ConvOptions options = {});
  std::string class_name() const override { return "Conv1D"; }
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Conv1D>(std::move(*this)); }
};

class Conv2D : public Conv {
 public:
  Conv2D(int filters, const IntTuple& kernel_size, ConvOptions options = {});
  std::string class_name() const override { return "Conv2D"; }
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Conv2D>(std::move(*this)); }
};

// keras.layers.Conv3D: (batch, depth, height, width, channels), kernel (kd, kh, kw, in/groups, filters).
class Conv3D : public Conv {
 public:
  Conv3D(int filters, const IntTuple& kernel_size, ConvOptions options = {});
  std::string class_name() const override { return "Conv3D"; }
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Conv3D>(std::move(*this)); }
};

}  // namespace strata
