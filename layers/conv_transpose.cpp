#include "layers/conv_transpose.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

ConvTranspose::ConvTranspose(int rank, int filters, const IntTuple& kernel_size, ConvTransposeOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), filters_(filters),
      kernel_size_(kernel_size.expand(rank, "kernel_size")), strides_(options.strides.expand(rank, "strides")),
      dilation_(options.dilation_rate.expand(rank, "dilation_rate")),
      output_padding_(options.output_padding ? options.output_padding->expand(rank, "output_padding") : std::vector<int>{}),
      options_(std::move(options)) {
  if (filters_ <= 0) throw std::invalid_argument(fmt::format("{}: filters must be positive, got {}", name(), filters_));
  check_conv_window(name(), kernel_size_, strides_, dilation_, options_.padding);
  for (std::size_t i = 0; i < output_padding_.size(); ++i)
    if (output_padding_[i] < 0 || output_padding_[i] >= std::max(strides_[i], dilation_[i]))
      throw std::invalid_argument(fmt::format("{}: output_padding {} must be smaller than the stride {} or the dilation {}", name(),
                                              output_padding_[i], strides_[i], dilation_[i]));
  check_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void ConvTranspose::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2 || input_shape[rank_ + 1] <= 0)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} with known channels, got {}", rank_ + 2, input_shape.to_string()));
  Shape kernel_shape;
  for (int k : kernel_size_) kernel_shape.push_back(k);
  kernel_shape.push_back(filters_);
  kernel_shape.push_back(input_shape[rank_ + 1]);
  kernel_ = add_weight("kernel", kernel_shape, options_.kernel_initializer);
  if (options_.use_bias) bias_ = add_weight("bias", {filters_}, options_.bias_initializer);
}

Tensor ConvTranspose::call(const Tensor& inputs) {
  Tensor y = ops::conv_transpose(inputs, kernel_, strides_, options_.padding, output_padding_, dilation_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json ConvTranspose::get_config() const {
  Json c = Layer::get_config();
  c["filters"] = filters_;
  write_conv_window(c, kernel_size_, strides_, options_.padding, dilation_);
  c["output_padding"] = output_padding_.empty() ? Json(nullptr) : Json(output_padding_);
  c["activation"] = activation_config_name(options_.activation);
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"})
    c[k] = nullptr;
  return c;
}

ConvTransposeOptions ConvTranspose::options_from_config(const Json& c, const std::string& cls, int rank,
                                                        std::vector<int>& kernel_size, int& filters) {
  config::check_keys(c, cls, {"filters", "kernel_size", "strides", "padding", "output_padding", "data_format", "dilation_rate",
                              "activation", "use_bias", "kernel_initializer", "bias_initializer"});
  if (!c.contains("filters") || !c.at("filters").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'filters' must be an integer", cls));
  filters = c.at("filters").get<int>();
  const ConvConfig common = read_conv_config(c, cls, rank);
  kernel_size = common.kernel_size;
  ConvTransposeOptions o;
  o.strides = common.strides;
  o.padding = common.padding;
  if (c.contains("output_padding") && !c.at("output_padding").is_null()) o.output_padding = config::int_tuple(c, "output_padding", rank, {});
  o.dilation_rate = common.dilation_rate;
  o.activation = common.activation;
  o.use_bias = common.use_bias;
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.name = common.name;
  o.trainable = common.trainable;
  return o;
}

}  // namespace strata
