#include "layers/conv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

std::vector<int> IntTuple::expand(int rank, const char* what) const {
  if (values_.size() == 1) return std::vector<int>(static_cast<std::size_t>(rank), values_[0]);
  if (int(values_.size()) != rank)
    throw std::invalid_argument(fmt::format("{} must have 1 or {} values, got ({})", what, rank, fmt::join(values_, ", ")));
  return values_;
}

ConvConfig read_conv_config(const Json& c, const std::string& cls, int rank) {
  config::require_channels_last(c, cls);
  if (!c.contains("kernel_size")) throw std::invalid_argument(fmt::format("{}: 'kernel_size' is missing", cls));
  ConvConfig r;
  r.kernel_size = config::int_tuple(c, "kernel_size", rank, {});
  r.strides = config::int_tuple(c, "strides", rank, {1});
  r.dilation_rate = config::int_tuple(c, "dilation_rate", rank, {1});
  r.padding = c.value("padding", std::string("valid"));
  if (c.contains("activation") && c.at("activation").is_string()) r.activation = c.at("activation").get<std::string>();
  r.use_bias = c.value("use_bias", true);
  r.name = config::name(c);
  r.trainable = config::trainable(c);
  return r;
}

void write_conv_window(Json& c, const std::vector<int>& kernel_size, const std::vector<int>& strides,
                       const std::string& padding, const std::vector<int>& dilation_rate) {
  c["kernel_size"] = kernel_size;
  c["strides"] = strides;
  c["padding"] = padding;
  c["data_format"] = "channels_last";
  c["dilation_rate"] = dilation_rate;
}

std::string activation_config_name(const std::string& activation) {
  return activation.empty() || activation == "None" ? "linear" : activation;
}

void check_conv_window(const std::string& layer, const std::vector<int>& kernel_size, const std::vector<int>& strides,
                       const std::vector<int>& dilation_rate, const std::string& padding) {
  auto positive = [&](const std::vector<int>& values, const char* what) {
    for (int v : values)
      if (v <= 0) throw std::invalid_argument(fmt::format("{}: {} must be positive, got ({})", layer, what, fmt::join(values, ", ")));
  };
  positive(kernel_size, "kernel_size");
  positive(strides, "strides");
  positive(dilation_rate, "dilation_rate");
  if (padding != "valid" && padding != "same")
    throw std::invalid_argument(fmt::format("{}: padding must be 'valid' or 'same', got '{}'", layer, padding));
}

Conv::Conv(int rank, int filters, const IntTuple& kernel_size, ConvOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), filters_(filters),
      kernel_size_(kernel_size.expand(rank, "kernel_size")), strides_(options.strides.expand(rank, "strides")),
      dilation_(options.dilation_rate.expand(rank, "dilation_rate")), options_(std::move(options)) {
  if (filters_ <= 0) throw std::invalid_argument(fmt::format("{}: filters must be positive, got {}", name(), filters_));
  // "causal" (Conv1D only, as Keras): the valid convolution of the input padded on the left.
  check_conv_window(name(), kernel_size_, strides_, dilation_, causal() ? "valid" : options_.padding);
  if (options_.groups <= 0 || filters_ % options_.groups != 0)
    throw std::invalid_argument(fmt::format("{}: filters {} must be a multiple of groups {}", name(), filters_, options_.groups));
  check_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void Conv::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} (batch, {}channels), got {}", rank_ + 2,
                                            rank_ == 3 ? "depth, height, width, " : rank_ == 2 ? "height, width, " : "steps, ",
                                            input_shape.to_string()));
  const std::int64_t channels = input_shape[input_shape.rank() - 1];
  if (channels <= 0 || channels % options_.groups != 0)
    throw std::invalid_argument(fmt::format("input channels {} must be a multiple of groups {}", channels, options_.groups));
  Shape kernel_shape;
  for (int k : kernel_size_) kernel_shape.push_back(k);
  kernel_shape.push_back(channels / options_.groups);
  kernel_shape.push_back(filters_);
  kernel_ = add_weight("kernel", kernel_shape, options_.kernel_initializer);
  if (options_.use_bias) bias_ = add_weight("bias", {filters_}, options_.bias_initializer);
}

Tensor Conv::call(const Tensor& inputs) {
  // "causal": each output step sees its own and earlier steps only, (kernel - 1) * dilation zeros before the first.
  const std::int64_t causal_left = causal() ? std::int64_t(kernel_size_[0] - 1) * dilation_[0] : 0;
  const Tensor x = causal() ? ops::pad(inputs, {{0, 0}, {causal_left, 0}, {0, 0}}) : inputs;
  Tensor y = ops::conv(x, kernel_, strides_, causal() ? "valid" : options_.padding, dilation_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json Conv::get_config() const {
  Json c = Layer::get_config();
  c["filters"] = filters_;
  write_conv_window(c, kernel_size_, strides_, options_.padding, dilation_);
  c["groups"] = options_.groups;
  c["activation"] = activation_config_name(options_.activation);
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"})
    c[k] = nullptr;
  return c;
}

ConvOptions Conv::options_from_config(const Json& c, const std::string& cls, int rank, std::vector<int>& kernel_size, int& filters) {
  config::check_keys(c, cls, {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups", "activation",
                              "use_bias", "kernel_initializer", "bias_initializer"});
  if (!c.contains("filters") || !c.at("filters").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'filters' must be an integer", cls));
  filters = c.at("filters").get<int>();
  const ConvConfig common = read_conv_config(c, cls, rank);
  kernel_size = common.kernel_size;
  ConvOptions o;
  o.strides = common.strides;
  o.dilation_rate = common.dilation_rate;
  o.padding = common.padding;
  o.groups = c.value("groups", 1);
  o.activation = common.activation;
  o.use_bias = common.use_bias;
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.name = common.name;
  o.trainable = common.trainable;
  return o;
}

Conv1D::Conv1D(int filters, const IntTuple& kernel_size, ConvOptions options) : Conv(1, filters, kernel_size, std::move(options), "conv1d") {}
Conv2D::Conv2D(int filters, const IntTuple& kernel_size, ConvOptions options) : Conv(2, filters, kernel_size, std::move(options), "conv2d") {}

LayerPtr Conv1D::from_config(const Json& c) {
  std::vector<int> kernel_size;
  int filters = 0;
  ConvOptions o = options_from_config(c, "Conv1D", 1, kernel_size, filters);
  return std::make_shared<Conv1D>(filters, kernel_size, o);
}

LayerPtr Conv2D::from_config(const Json& c) {
  std::vector<int> kernel_size;
  int filters = 0;
  ConvOptions o = options_from_config(c, "Conv2D", 2, kernel_size, filters);
  return std::make_shared<Conv2D>(filters, kernel_size, o);
}

Conv3D::Conv3D(int filters, const IntTuple& kernel_size, ConvOptions options) : Conv(3, filters, kernel_size, std::move(options), "conv3d") {}

LayerPtr Conv3D::from_config(const Json& c) {
  std::vector<int> kernel_size;
  int filters = 0;
  ConvOptions o = options_from_config(c, "Conv3D", 3, kernel_size, filters);
  return std::make_shared<Conv3D>(filters, kernel_size, o);
}

}  // namespace strata
