#include "layers/depthwise_conv.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

DepthwiseConv::DepthwiseConv(int rank, const IntTuple& kernel_size, DepthwiseConvOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), kernel_size_(kernel_size.expand(rank, "kernel_size")),
      strides_(options.strides.expand(rank, "strides")), dilation_(options.dilation_rate.expand(rank, "dilation_rate")),
      options_(std::move(options)) {
  check_conv_window(name(), kernel_size_, strides_, dilation_, options_.padding);
  if (options_.depth_multiplier <= 0)
    throw std::invalid_argument(fmt::format("{}: depth_multiplier must be positive, got {}", name(), options_.depth_multiplier));
  check_activation(options_.activation);
  get_initializer(options_.depthwise_initializer);
  get_initializer(options_.bias_initializer);
}

void DepthwiseConv::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2 || input_shape[rank_ + 1] <= 0)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} with known channels, got {}", rank_ + 2, input_shape.to_string()));
  Shape kernel_shape;
  for (int k : kernel_size_) kernel_shape.push_back(k);
  kernel_shape.push_back(input_shape[rank_ + 1]);
  kernel_shape.push_back(options_.depth_multiplier);
  kernel_ = add_weight("kernel", kernel_shape, options_.depthwise_initializer);
  if (options_.use_bias)
    bias_ = add_weight("bias", {input_shape[rank_ + 1] * options_.depth_multiplier}, options_.bias_initializer);
}

Tensor DepthwiseConv::call(const Tensor& inputs) {
  // A grouped convolution with one input channel per group: Keras's (..., channels, multiplier) kernel read as
  // (..., 1, channels * multiplier) puts filter m of channel c at output c * multiplier + m, as Keras does.
  const Shape& ks = kernel_->shape();
  std::vector<std::int64_t> grouped(ks.begin(), ks.end() - 2);
  grouped.push_back(1);
  grouped.push_back(ks[ks.rank() - 2] * ks[ks.rank() - 1]);
  Tensor y = ops::conv(inputs, ops::reshape(ops::variable(kernel_, inputs), grouped), strides_, options_.padding, dilation_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json DepthwiseConv::get_config() const {
  Json c = Layer::get_config();
  c["depth_multiplier"] = options_.depth_multiplier;
  write_conv_window(c, kernel_size_, strides_, options_.padding, dilation_);
  c["activation"] = activation_config_name(options_.activation);
  c["use_bias"] = options_.use_bias;
  c["depthwise_initializer"] = get_initializer(options_.depthwise_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"depthwise_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_constraint", "bias_constraint"})
    c[k] = nullptr;
  return c;
}

DepthwiseConvOptions DepthwiseConv::options_from_config(const Json& c, const std::string& cls, int rank,
                                                        std::vector<int>& kernel_size) {
  config::check_keys(c, cls, {"kernel_size", "strides", "padding", "data_format", "dilation_rate", "depth_multiplier", "activation",
                              "use_bias", "depthwise_initializer", "bias_initializer"});
  const ConvConfig common = read_conv_config(c, cls, rank);
  kernel_size = common.kernel_size;
  DepthwiseConvOptions o;
  o.strides = common.strides;
  o.padding = common.padding;
  o.depth_multiplier = c.value("depth_multiplier", 1);
  o.dilation_rate = common.dilation_rate;
  o.activation = common.activation;
  o.use_bias = common.use_bias;
  o.depthwise_initializer = config::initializer(c, "depthwise_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.name = common.name;
  o.trainable = common.trainable;
  return o;
}

}  // namespace strata
