#include "layers/separable_conv.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

SeparableConv::SeparableConv(int rank, int filters, const IntTuple& kernel_size, SeparableConvOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), filters_(filters),
      kernel_size_(kernel_size.expand(rank, "kernel_size")), strides_(options.strides.expand(rank, "strides")),
      dilation_(options.dilation_rate.expand(rank, "dilation_rate")), options_(std::move(options)) {
  if (filters_ <= 0) throw std::invalid_argument(fmt::format("{}: filters must be positive, got {}", name(), filters_));
  check_conv_window(name(), kernel_size_, strides_, dilation_, options_.padding);
  if (options_.depth_multiplier <= 0)
    throw std::invalid_argument(fmt::format("{}: depth_multiplier must be positive, got {}", name(), options_.depth_multiplier));
  check_activation(options_.activation);
  for (const Json* init : {&options_.depthwise_initializer, &options_.pointwise_initializer, &options_.bias_initializer})
    get_initializer(*init);
}

void SeparableConv::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2 || input_shape[rank_ + 1] <= 0)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} with known channels, got {}", rank_ + 2, input_shape.to_string()));
  const std::int64_t channels = input_shape[rank_ + 1];
  Shape depthwise, pointwise;
  for (int k : kernel_size_) {
    depthwise.push_back(k);
    pointwise.push_back(1);
  }
  depthwise.push_back(channels);
  depthwise.push_back(options_.depth_multiplier);
  pointwise.push_back(channels * options_.depth_multiplier);
  pointwise.push_back(filters_);
  depthwise_kernel_ = add_weight("depthwise_kernel", depthwise, options_.depthwise_initializer);
  pointwise_kernel_ = add_weight("pointwise_kernel", pointwise, options_.pointwise_initializer);
  if (options_.use_bias) bias_ = add_weight("bias", {filters_}, options_.bias_initializer);
}

Tensor SeparableConv::call(const Tensor& inputs) {
  // The depthwise kernel read as a grouped one, as DepthwiseConv does.
  const Shape& ks = depthwise_kernel_->shape();
  std::vector<std::int64_t> grouped(ks.begin(), ks.end() - 2);
  grouped.push_back(1);
  grouped.push_back(ks[ks.rank() - 2] * ks[ks.rank() - 1]);
  const Tensor depthwise = ops::reshape(ops::variable(depthwise_kernel_, inputs), grouped);
  Tensor y = ops::conv(ops::conv(inputs, depthwise, strides_, options_.padding, dilation_), pointwise_kernel_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json SeparableConv::get_config() const {
  Json c = Layer::get_config();
  c["depth_multiplier"] = options_.depth_multiplier;
  c["filters"] = filters_;
  write_conv_window(c, kernel_size_, strides_, options_.padding, dilation_);
  c["activation"] = activation_config_name(options_.activation);
  c["use_bias"] = options_.use_bias;
  c["depthwise_initializer"] = get_initializer(options_.depthwise_initializer)->to_json();
  c["pointwise_initializer"] = get_initializer(options_.pointwise_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
                        "depthwise_constraint", "pointwise_constraint", "bias_constraint"})
    c[k] = nullptr;
  return c;
}

SeparableConvOptions SeparableConv::options_from_config(const Json& c, const std::string& cls, int rank,
                                                        std::vector<int>& kernel_size, int& filters) {
  config::check_keys(c, cls, {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "depth_multiplier",
                              "activation", "use_bias", "depthwise_initializer", "pointwise_initializer", "bias_initializer"});
  if (!c.contains("filters") || !c.at("filters").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'filters' must be an integer", cls));
  filters = c.at("filters").get<int>();
  const ConvConfig common = read_conv_config(c, cls, rank);
  kernel_size = common.kernel_size;
  SeparableConvOptions o;
  o.strides = common.strides;
  o.padding = common.padding;
  o.depth_multiplier = c.value("depth_multiplier", 1);
  o.dilation_rate = common.dilation_rate;
  o.activation = common.activation;
  o.use_bias = common.use_bias;
  o.depthwise_initializer = config::initializer(c, "depthwise_initializer", "glorot_uniform");
  o.pointwise_initializer = config::initializer(c, "pointwise_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.name = common.name;
  o.trainable = common.trainable;
  return o;
}

}  // namespace strata
