#include "layers/input_layer.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

InputLayer::InputLayer(Shape shape, InputOptions options)
    : LayerBase(options.name, "input_layer"), dtype_(options.dtype) {
  if (shape.rank() + 1 > kMaxRank)
    throw std::invalid_argument(fmt::format("Input: shape {} has too many dimensions", shape.to_string()));
  batch_shape_.push_back(options.batch_size);
  // An unknown dimension (-1, Keras's None) takes its size from the data each time the model runs: a
  // sequence of any length, an image of any size.
  for (auto d : shape) {
    if (d < -1) throw std::invalid_argument(fmt::format("Input '{}': dimension {} of shape {} must be at least 0, or -1 (unknown)", name(), d, shape.to_string()));
    batch_shape_.push_back(d);
  }
}

Tensor InputLayer::output() {
  if (std::shared_ptr<Graph> graph = graph_.lock()) return Tensor(std::move(graph), output_);
  const Tensor placeholder = ops::placeholder(batch_shape_, dtype_, name());
  placeholder.graph().record_call({shared(), {}, {placeholder.id()}, {}});
  graph_ = placeholder.graph_ptr();
  output_ = placeholder.id();
  return placeholder;
}

Json InputLayer::get_config() const {
  return {{"batch_shape", config::shape_to_json(batch_shape_)},
          {"dtype", std::string(dtype_name(dtype_))},
          {"sparse", false},
          {"ragged", false},
          {"name", name()},
          {"optional", false}};
}

LayerPtr InputLayer::from_config(const Json& c) {
  config::check_keys(c, "InputLayer", {"batch_shape", "batch_input_shape", "shape", "batch_size", "sparse", "ragged", "optional"});
  for (const char* flag : {"sparse", "ragged", "optional"})
    if (c.contains(flag) && c.at(flag).is_boolean() && c.at(flag).get<bool>())
      throw std::invalid_argument(fmt::format("InputLayer: '{}' inputs are not supported", flag));
  Shape batch_shape;
  if (c.contains("batch_shape") && !c.at("batch_shape").is_null()) batch_shape = config::shape(c.at("batch_shape"), "InputLayer batch_shape");
  else if (c.contains("batch_input_shape") && !c.at("batch_input_shape").is_null())
    batch_shape = config::shape(c.at("batch_input_shape"), "InputLayer batch_input_shape");
  else if (c.contains("shape") && !c.at("shape").is_null()) {
    batch_shape.push_back(c.value("batch_size", Json(nullptr)).is_number_integer() ? c.at("batch_size").get<std::int64_t>() : -1);
    for (auto d : config::shape(c.at("shape"), "InputLayer shape")) batch_shape.push_back(d);
  } else {
    throw std::invalid_argument("InputLayer: the config has no batch_shape");
  }
  if (batch_shape.rank() < 1) throw std::invalid_argument("InputLayer: batch_shape is empty");
  Shape shape;
  for (int i = 1; i < batch_shape.rank(); ++i) shape.push_back(batch_shape[i]);
  InputOptions options{.name = config::name(c), .batch_size = batch_shape[0]};
  if (c.contains("dtype") && c.at("dtype").is_string()) options.dtype = parse_dtype(c.at("dtype").get<std::string>());
  return std::make_shared<InputLayer>(shape, options);
}

Tensor Input(Shape shape, InputOptions options) {
  auto layer = std::make_shared<InputLayer>(shape, std::move(options));
  return layer->output();
}

}  // namespace strata
