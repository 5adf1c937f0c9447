#include "layers/pooling.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

Pooling::Pooling(bool max, int rank, const IntTuple& pool_size, PoolingOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), max_(max), rank_(rank), pool_size_(pool_size.expand(rank, "pool_size")),
      strides_(options.strides ? options.strides->expand(rank, "strides") : pool_size_), padding_(options.padding) {
  for (int v : pool_size_)
    if (v <= 0) throw std::invalid_argument(fmt::format("{}: pool_size must be positive", name()));
  for (int v : strides_)
    if (v <= 0) throw std::invalid_argument(fmt::format("{}: strides must be positive", name()));
  if (padding_ != "valid" && padding_ != "same")
    throw std::invalid_argument(fmt::format("{}: padding must be 'valid' or 'same', got '{}'", name(), padding_));
}

Tensor Pooling::call(const Tensor& inputs) {
  if (inputs.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 2, inputs.shape().to_string()));
  return max_ ? ops::max_pool(inputs, pool_size_, strides_, padding_) : ops::average_pool(inputs, pool_size_, strides_, padding_);
}

Json Pooling::get_config() const {
  Json c = Layer::get_config();
  c["pool_size"] = pool_size_;
  c["padding"] = padding_;
  c["strides"] = strides_;
  c["data_format"] = "channels_last";
  return c;
}

PoolingOptions Pooling::options_from_config(const Json& c, const std::string& cls, int rank, std::vector<int>& pool_size) {
  config::check_keys(c, cls, {"pool_size", "strides", "padding", "data_format"});
  config::require_channels_last(c, cls);
  pool_size = config::int_tuple(c, "pool_size", rank, std::vector<int>(static_cast<std::size_t>(rank), 2));
  PoolingOptions o;
  if (c.contains("strides") && !c.at("strides").is_null()) o.strides = config::int_tuple(c, "strides", rank, {});
  o.padding = c.value("padding", std::string("valid"));
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

GlobalPooling::GlobalPooling(bool max, int rank, GlobalPoolingOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), max_(max), rank_(rank), keepdims_(options.keepdims) {}

void GlobalPooling::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("expects inputs of rank {}, got {}", rank_ + 2, input_shape.to_string()));
}

Tensor GlobalPooling::call(const Tensor& inputs) {
  std::vector<int> axes;
  for (int i = 1; i <= rank_; ++i) axes.push_back(i);
  const Tensor mask = get_keras_mask(inputs);
  if (!max_ && rank_ == 1 && mask.valid()) {
    // Keras's GlobalAveragePooling1D averages over the unmasked steps only.
    const Tensor m = ops::expand_dims(mask, 2);
    return ops::divide(ops::sum(ops::multiply(inputs, m), axes, keepdims_), ops::sum(m, axes, keepdims_));
  }
  return max_ ? ops::max(inputs, axes, keepdims_) : ops::mean(inputs, axes, keepdims_);
}

Json GlobalPooling::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  c["keepdims"] = keepdims_;
  return c;
}

GlobalPoolingOptions GlobalPooling::options_from_config(const Json& c, const std::string& cls) {
  config::check_keys(c, cls, {"data_format", "keepdims"});
  config::require_channels_last(c, cls);
  GlobalPoolingOptions o;
  o.keepdims = c.value("keepdims", false);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

}  // namespace strata
