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

Conv::Conv(int rank, int filters, const IntTuple& kernel_size, ConvOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), filters_(filters),
      kernel_size_(kernel_size.expand(rank, "kernel_size")), strides_(options.strides.expand(rank, "strides")),
      dilation_(options.dilation_rate.expand(rank, "dilation_rate")), options_(std::move(options)) {
  if (filters_ <= 0) throw std::invalid_argument(fmt::format("{}: filters must be positive, got {}", name(), filters_));
  for (int v : kernel_size_)
    if (v <= 0) throw std::invalid_argument(fmt::format("{}: kernel_size must be positive", name()));
  for (int v : strides_)
    if (v <= 0) throw std::invalid_argument(fmt::format("{}: strides must be positive", name()));
  for (int v : dilation_)
    if (v <= 0) throw std::invalid_argument(fmt::format("{}: dilation_rate must be positive", name()));
  if (options_.padding != "valid" && options_.padding != "same")
    throw std::invalid_argument(fmt::format("{}: padding must be 'valid' or 'same', got '{}'", name(), options_.padding));
  if (options_.groups <= 0 || filters_ % options_.groups != 0)
    throw std::invalid_argument(fmt::format("{}: filters {} must be a multiple of groups {}", name(), filters_, options_.groups));
  check_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void Conv::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} (batch, {}channels), got {}", rank_ + 2,
                                            rank_ == 2 ? "height, width, " : "steps, ", input_shape.to_string()));
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
  Tensor y = ops::conv(inputs, kernel_, strides_, options_.padding, dilation_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json Conv::get_config() const {
  Json c = Layer::get_config();
  c["filters"] = filters_;
  c["kernel_size"] = kernel_size_;
  c["strides"] = strides_;
  c["padding"] = options_.padding;
  c["data_format"] = "channels_last";
  c["dilation_rate"] = dilation_;
  c["groups"] = options_.groups;
  c["activation"] = options_.activation.empty() || options_.activation == "None" ? "linear" : options_.activation;
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
  config::require_channels_last(c, cls);
  if (!c.contains("filters") || !c.at("filters").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'filters' must be an integer", cls));
  filters = c.at("filters").get<int>();
  if (!c.contains("kernel_size")) throw std::invalid_argument(fmt::format("{}: 'kernel_size' is missing", cls));
  kernel_size = config::int_tuple(c, "kernel_size", rank, {});
  ConvOptions o;
  o.strides = config::int_tuple(c, "strides", rank, {1});
  o.dilation_rate = config::int_tuple(c, "dilation_rate", rank, {1});
  o.padding = c.value("padding", std::string("valid"));
  o.groups = c.value("groups", 1);
  if (c.contains("activation") && c.at("activation").is_string()) o.activation = c.at("activation").get<std::string>();
  o.use_bias = c.value("use_bias", true);
  if (c.contains("kernel_initializer") && !c.at("kernel_initializer").is_null()) o.kernel_initializer = c.at("kernel_initializer");
  if (c.contains("bias_initializer") && !c.at("bias_initializer").is_null()) o.bias_initializer = c.at("bias_initializer");
  o.name = config::name(c);
  o.trainable = config::trainable(c);
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

}  // namespace strata
