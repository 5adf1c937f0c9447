#include "layers/dense.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

Dense::Dense(std::int64_t units, DenseOptions options)
    : LayerBase(options.name, "dense", options.trainable), units_(units), options_(std::move(options)) {
  if (units_ <= 0) throw std::invalid_argument(fmt::format("Dense '{}': units must be positive, got {}", name(), units_));
  check_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void Dense::build(const Shape& input_shape) {
  if (input_shape.rank() < 2 || input_shape[input_shape.rank() - 1] < 0)
    throw std::invalid_argument(fmt::format("Dense needs inputs of rank 2 or more with a known last dimension, got {}",
                                            input_shape.to_string()));
  const std::int64_t in = input_shape[input_shape.rank() - 1];
  kernel_ = add_weight("kernel", {in, units_}, options_.kernel_initializer);
  if (options_.use_bias) bias_ = add_weight("bias", {units_}, options_.bias_initializer);
}

Tensor Dense::call(const Tensor& inputs) {
  Tensor y = ops::matmul(inputs, kernel_);
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json Dense::get_config() const {
  Json c = Layer::get_config();
  c["units"] = units_;
  c["activation"] = options_.activation.empty() || options_.activation == "None" ? "linear" : options_.activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint", "quantization_config"})
    c[k] = nullptr;
  return c;
}

LayerPtr Dense::from_config(const Json& c) {
  config::check_keys(c, "Dense", {"units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "lora_rank", "lora_alpha"});
  if (!c.contains("units") || !c.at("units").is_number_integer())
    throw std::invalid_argument("Dense: 'units' must be a positive integer");
  if (c.contains("lora_rank") && !c.at("lora_rank").is_null()) throw std::invalid_argument("Dense: LoRA is not supported");
  DenseOptions o;
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  if (c.contains("activation") && c.at("activation").is_string()) o.activation = c.at("activation").get<std::string>();
  if (c.contains("use_bias") && c.at("use_bias").is_boolean()) o.use_bias = c.at("use_bias").get<bool>();
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  return std::make_shared<Dense>(c.at("units").get<std::int64_t>(), o);
}

}  // namespace strata
