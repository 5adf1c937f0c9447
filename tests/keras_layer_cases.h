// Runs one layer case recorded from Keras (scripts/fixtures/keras_*_layers.py): the layer built from the
// config Keras wrote, through the registry, given Keras's weights, must give Keras's output (and, for
// cases with a training record, its training output and updated weights). Shared by the layer tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include "api/strata.h"
#include "graph/program.h"

namespace strata::test {

// Runs `f` on x (batch dimension symbolic) in `mode`; returns the output and its shape. A training run
// steps SGD with learning rate 0, so that only the layer's own side effects change its weights.
inline std::vector<float> run(const std::function<Tensor(const Tensor&)>& f, const Shape& shape, const std::vector<float>& x,
                       Shape* out_shape = nullptr, Mode mode = Mode::inference) {
  Shape symbolic = shape;
  symbolic[0] = -1;
  const Tensor in = ops::placeholder(symbolic);
  const Tensor out = f(in);
  Program p({in}, {out}, ops::sum(out), std::make_shared<SGD>(SGDOptions{.learning_rate = 0.f}));
  const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
  p.run(mode, std::span(&feed, 1));
  if (out_shape) *out_shape = p.output_shape(0);
  return p.read_output(0);
}

// Runs `layer` on x for `steps` training steps (SGD with learning rate 0) and returns each step's output,
// so that a random layer's draws can be checked and seen to change between steps.
inline std::vector<std::vector<float>> training_runs(const LayerPtr& layer, const Shape& shape, const std::vector<float>& x, int steps) {
  Shape symbolic = shape;
  symbolic[0] = -1;
  const Tensor in = ops::placeholder(symbolic);
  const Tensor out = layer->trace(in);
  Program p({in}, {out}, ops::sum(out), std::make_shared<SGD>(SGDOptions{.learning_rate = 0.0}));
  const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
  std::vector<std::vector<float>> outputs;
  for (int i = 0; i < steps; ++i) {
    p.run(Mode::training, std::span(&feed, 1));
    outputs.push_back(p.read_output(0));
  }
  return outputs;
}

// The same for two steps.
inline std::pair<std::vector<float>, std::vector<float>> two_training_runs(const LayerPtr& layer, const Shape& shape,
                                                                           const std::vector<float>& x) {
  auto runs = training_runs(layer, shape, x, 2);
  return {std::move(runs[0]), std::move(runs[1])};
}

// The same for a layer of several inputs, in inference.
inline std::vector<float> run_multi(const LayerPtr& layer, const std::vector<Shape>& shapes, const std::vector<std::vector<float>>& data,
                                    Shape* out_shape) {
  std::vector<Tensor> inputs;
  for (const Shape& s : shapes) {
    Shape symbolic = s;
    symbolic[0] = -1;
    inputs.push_back(ops::placeholder(symbolic));
  }
  const Tensor out = layer->trace(inputs);
  Program p(inputs, {out});
  std::vector<TensorView> feeds;
  for (std::size_t i = 0; i < shapes.size(); ++i) feeds.push_back({const_cast<float*>(data[i].data()), DType::float32, shapes[i]});
  p.run(Mode::inference, feeds);
  *out_shape = p.output_shape(0);
  return p.read_output(0);
}

inline void expect_near_all(const std::vector<float>& actual, const std::vector<double>& expected, double tol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], tol * (1 + std::fabs(expected[i]))) << what << " at " << i;
}


inline Json load_layer_fixture(const std::string& file) {
  std::ifstream in(std::string(STRATA_FIXTURES_DIR) + "/" + file);
  if (!in) throw std::runtime_error("cannot open tests/fixtures/" + file);
  return Json::parse(in);
}

inline std::vector<double> doubles(const Json& values) {
  std::vector<double> out;
  for (const Json& v : values) out.push_back(v.get<double>());
  return out;
}

inline void check_keras_layer_case(const Json& c) {
  SCOPED_TRACE(c["name"].get<std::string>());
  clear_session();
  const LayerPtr layer = layer_from_json(c["layer"]);
  if (c.contains("inputs")) {  // a layer of several inputs: inference output only
    std::vector<Shape> shapes;
    std::vector<std::vector<float>> data;
    for (const Json& in : c["inputs"]) {
      shapes.push_back(config::shape(in["shape"], "shape"));
      data.push_back(in["values"].get<std::vector<float>>());
    }
    Shape out_shape;
    (void)run_multi(layer, shapes, data, &out_shape);  // builds the weights
    ASSERT_EQ(layer->weights().size(), c["weights"].size());
    for (std::size_t i = 0; i < layer->weights().size(); ++i) layer->weights()[i]->assign(c["weights"][i]["values"].get<std::vector<float>>());
    const auto y = run_multi(layer, shapes, data, &out_shape);
    EXPECT_EQ(out_shape, config::shape(c["output_shape"], "output_shape"));
    expect_near_all(y, doubles(c["y"]), 1e-5, "inference output");
    EXPECT_EQ(layer_from_config(layer->class_name(), layer->get_config())->get_config(), layer->get_config());
    return;
  }
  const Shape shape = config::shape(c["input_shape"], "input_shape");
  std::vector<float> x;
  for (const Json& v : c["x"]) x.push_back(v.get<float>());
  Shape out_shape;
  (void)run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out_shape);  // builds the weights
  ASSERT_EQ(layer->weights().size(), c["weights"].size());
  for (std::size_t i = 0; i < layer->weights().size(); ++i) {
    const Json& w = c["weights"][i];
    ASSERT_EQ(layer->weights()[i]->shape(), config::shape(w["shape"], "weight")) << layer->weights()[i]->name();
    std::vector<float> values;
    for (const Json& v : w["values"]) values.push_back(v.get<float>());
    layer->weights()[i]->assign(values);
  }
  const auto y = run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out_shape);
  EXPECT_EQ(out_shape, config::shape(c["output_shape"], "output_shape"));
  expect_near_all(y, doubles(c["y"]), 1e-5, "inference output");
  // Re-encoding the config gives one that reads back to the same layer.
  EXPECT_EQ(layer_from_config(layer->class_name(), layer->get_config())->get_config(), layer->get_config());
  if (!c.contains("y_train")) return;
  const auto y_train = run([&](const Tensor& t) { return layer->trace(t); }, shape, x, nullptr, Mode::training);
  expect_near_all(y_train, doubles(c["y_train"]), 1e-5, "training output");
  for (std::size_t i = 0; i < layer->weights().size(); ++i)
    expect_near_all(layer->weights()[i]->to_vector(), doubles(c["weights_after_training"][i]), 1e-6, layer->weights()[i]->name());
}


}  // namespace strata::test
