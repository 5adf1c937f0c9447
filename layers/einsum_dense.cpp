#include "layers/einsum_dense.h"

#include <fmt/format.h>

#include <regex>
#include <stdexcept>

#include "graph/einsum.h"
#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

namespace {

struct EinsumWeights {
  std::vector<std::int64_t> kernel;
  std::optional<std::vector<std::int64_t>> bias;
  std::vector<int> input_axes, output_axes;  // the kernel's axes of input units and of output units
};

std::string dims(const std::vector<std::int64_t>& v) {
  std::vector<std::string> parts;
  for (std::int64_t d : v) parts.push_back(d < 0 ? "None" : std::to_string(d));
  return fmt::format("({})", fmt::join(parts, ", "));
}

// The kernel's and bias's shapes as keras.layers.EinsumDense reads them from the equation, the input shape
// (batch first) and the output shape the layer was given (without the batch dimension).
EinsumWeights analyse(const std::string& layer, const std::string& equation, const std::string& bias_axes, const Shape& input,
                      const std::vector<std::int64_t>& partial_output) {
  const std::string s = std::regex_replace(equation, std::regex("\\.\\.\\."), "0");
  std::smatch m;
  bool ellipsis = true, left_elided = false;
  if (std::regex_match(s, m, std::regex("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"))) {
    ellipsis = false;
  } else if (std::regex_match(s, m, std::regex("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)"))) {
    left_elided = true;
  } else if (!std::regex_match(s, m, std::regex("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0"))) {
    throw std::invalid_argument(fmt::format("EinsumDense '{}': equation '{}' is not of the form X,Y->Z, ...X,Y->...Z or X...,Y->Z...",
                                            layer, equation));
  }
  const std::string in_spec = m[1], weight_spec = m[2], out_spec = m[3];
  const int rank = input.rank();
  const int elided = rank - int(in_spec.size());
  if (elided < 0 || (!ellipsis && elided != 0))
    throw std::invalid_argument(fmt::format("EinsumDense '{}': equation '{}' names {} input dimensions, but the input is {}", layer, equation,
                                            in_spec.size(), input.to_string()));
  // The whole output shape: the batch dimension, then the given shape, with the dimensions "..." stands for
  // where it stands (on the left as Keras places them).
  std::vector<std::int64_t> out{input[0]};
  out.insert(out.end(), partial_output.begin(), partial_output.end());
  if (elided > 0 && left_elided)
    for (int i = 1; i < elided; ++i) out.insert(out.begin() + 1, input[i]);
  else if (elided > 0)
    for (int i = rank - elided; i < rank; ++i) out.push_back(input[i]);
  if (out.size() != out_spec.size() + std::size_t(elided))
    throw std::invalid_argument(fmt::format("EinsumDense '{}': output_shape {} does not fit equation '{}' (output '{}') for input {}", layer,
                                            dims(partial_output), equation, out_spec, input.to_string()));
  const int shift = left_elided ? elided : 0;
  auto input_at = [&](char c) { return int(in_spec.find(c)) + shift; };
  auto output_at = [&](char c) { return int(out_spec.find(c)) + shift; };

  for (char c : in_spec)
    if (out_spec.find(c) != std::string::npos) {
      const std::int64_t in = input[input_at(c)], o = out[std::size_t(output_at(c))];
      if (o >= 0 && in >= 0 && o != in)
        throw std::invalid_argument(fmt::format("EinsumDense '{}': dimension '{}' is {} in the input {} but {} in output_shape {}", layer, c,
                                                in, input.to_string(), o, dims(partial_output)));
    }
  for (char c : out_spec)
    if (in_spec.find(c) == std::string::npos && weight_spec.find(c) == std::string::npos)
      throw std::invalid_argument(fmt::format("EinsumDense '{}': output dimension '{}' of '{}' is in neither the input nor the kernel", layer,
                                              c, equation));
  EinsumWeights w;
  for (std::size_t i = 0; i < weight_spec.size(); ++i) {
    const char c = weight_spec[i];
    std::int64_t n;
    if (out_spec.find(c) != std::string::npos) {
      n = out[std::size_t(output_at(c))];
      w.output_axes.push_back(int(i));
    } else if (in_spec.find(c) != std::string::npos) {
      n = input[input_at(c)];
      w.input_axes.push_back(int(i));
    } else {
      throw std::invalid_argument(fmt::format("EinsumDense '{}': kernel dimension '{}' of '{}' is in neither the input nor the output", layer,
                                              c, equation));
    }
    if (n < 0)
      throw std::invalid_argument(fmt::format("EinsumDense '{}': the size of kernel dimension '{}' is unknown (input {}, output_shape {})",
                                              layer, c, input.to_string(), dims(partial_output)));
    w.kernel.push_back(n);
  }
  if (!bias_axes.empty()) {
    std::size_t first = out_spec.size();
    for (char c : bias_axes) {
      const auto at = out_spec.find(c);
      if (at == std::string::npos)
        throw std::invalid_argument(fmt::format("EinsumDense '{}': bias axis '{}' is not in the output '{}'", layer, c, out_spec));
      first = std::min(first, at);
    }
    std::vector<std::int64_t> bias;
    for (std::size_t i = first; i < out_spec.size(); ++i) {
      const char c = out_spec[i];
      const std::int64_t n = bias_axes.find(c) == std::string::npos ? 1 : out[i + std::size_t(shift)];
      if (n < 0) throw std::invalid_argument(fmt::format("EinsumDense '{}': the size of bias axis '{}' is unknown", layer, c));
      bias.push_back(n);
    }
    if (!left_elided) bias.insert(bias.end(), std::size_t(elided), 1);
    w.bias = bias;
  }
  return w;
}

}  // namespace

EinsumDense::EinsumDense(std::string equation, std::vector<std::int64_t> output_shape, EinsumDenseOptions options)
    : LayerBase(options.name, "einsum_dense", options.trainable), equation_(std::move(equation)), output_shape_(std::move(output_shape)),
      options_(std::move(options)) {
  for (std::int64_t& d : output_shape_) d = d < 0 ? -1 : d;
  check_activation(options_.activation);
  get_initializer(options_.kernel_initializer);
  get_initializer(options_.bias_initializer);
}

void EinsumDense::build(const Shape& input_shape) {
  const EinsumWeights w = analyse(name(), equation_, options_.bias_axes, input_shape, output_shape_);
  // As Keras, a variance-scaling kernel initializer computes its fans over the kernel's input and output
  // axes unless it was given its own.
  Json kernel_init = options_.kernel_initializer;
  const auto init = get_initializer(kernel_init);
  if (const auto* scaling = dynamic_cast<const initializers::VarianceScaling*>(init.get()); scaling && !(scaling->input_axes && scaling->output_axes)) {
    kernel_init = init->to_json();
    kernel_init["config"]["input_axes"] = w.input_axes;
    kernel_init["config"]["output_axes"] = w.output_axes;
  }
  kernel_ = add_weight("kernel", Shape(std::span<const std::int64_t>(w.kernel)), kernel_init);
  if (w.bias) bias_ = add_weight("bias", Shape(std::span<const std::int64_t>(*w.bias)), options_.bias_initializer);
}

Tensor EinsumDense::call(const Tensor& inputs) {
  Tensor y = ops::einsum(equation_, inputs, ops::variable(kernel_, inputs));
  if (bias_) y = ops::add(y, bias_);
  return apply_activation(options_.activation, y);
}

Json EinsumDense::get_config() const {
  Json c = Layer::get_config();
  Json shape = Json::array();
  for (std::int64_t d : output_shape_) shape.push_back(d < 0 ? Json(nullptr) : Json(d));
  c["output_shape"] = shape;
  c["equation"] = equation_;
  c["activation"] = options_.activation.empty() || options_.activation == "None" ? "linear" : options_.activation;
  c["bias_axes"] = options_.bias_axes.empty() ? Json(nullptr) : Json(options_.bias_axes);
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  for (const char* k : {"kernel_regularizer", "bias_regularizer", "kernel_constraint", "bias_constraint", "quantization_config"}) c[k] = nullptr;
  return c;
}

LayerPtr EinsumDense::from_config(const Json& c) {
  if (c.contains("lora_rank") && !c.at("lora_rank").is_null()) throw std::invalid_argument("EinsumDense: LoRA (lora_rank) is not supported");
  config::check_keys(c, "EinsumDense", {"equation", "output_shape", "activation", "bias_axes", "kernel_initializer", "bias_initializer",
                                        "lora_alpha"});
  if (!c.contains("equation") || !c.at("equation").is_string()) throw std::invalid_argument("EinsumDense: 'equation' must be a string");
  std::vector<std::int64_t> shape;
  const Json& s = c.contains("output_shape") ? c.at("output_shape") : Json();
  if (s.is_number_integer()) {
    shape.push_back(s.get<std::int64_t>());
  } else if (s.is_array()) {
    for (const Json& d : s) {
      if (!d.is_null() && !d.is_number_integer())
        throw std::invalid_argument(fmt::format("EinsumDense: output_shape must hold integers or null, got {}", s.dump()));
      shape.push_back(d.is_null() ? -1 : d.get<std::int64_t>());
    }
  } else {
    throw std::invalid_argument(fmt::format("EinsumDense: output_shape must be an integer or a list, got {}", s.dump()));
  }
  EinsumDenseOptions o;
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  if (c.contains("activation") && c.at("activation").is_string()) o.activation = c.at("activation").get<std::string>();
  if (c.contains("bias_axes") && c.at("bias_axes").is_string()) o.bias_axes = c.at("bias_axes").get<std::string>();
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  return std::make_shared<EinsumDense>(c.at("equation").get<std::string>(), shape, o);
}

}  // namespace strata
