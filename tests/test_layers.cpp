// Layers and initializers against independent references written with loops in double.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata {
namespace {

// Runs `f` on one placeholder of `shape` fed with `x` and returns the output values.
std::vector<float> run_layer(const std::function<Tensor(const Tensor&)>& f, const Shape& shape, const std::vector<float>& x,
                             Mode mode = Mode::inference, Shape* out_shape = nullptr) {
  Shape symbolic = shape;
  symbolic[0] = -1;
  const Tensor in = ops::placeholder(symbolic);
  const Tensor out = f(in);
  if (mode == Mode::training) {
    const Tensor loss = ops::sum(out);
    Program p({in}, {out}, loss, std::make_shared<Optimizer>(OptimizerUpdate{.learning_rate = 0.f}));
    const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
    p.run(mode, std::span(&feed, 1));
    if (out_shape) *out_shape = p.output_shape(0);
    return p.read_output(0);
  }
  Program p({in}, {out});
  const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
  p.run(mode, std::span(&feed, 1));
  if (out_shape) *out_shape = p.output_shape(0);
  return p.read_output(0);
}

double reference_activation(const std::string& name, double x) {
  if (name == "relu") return std::max(0.0, x);
  if (name == "sigmoid") return 1 / (1 + std::exp(-x));
  if (name == "tanh") return std::tanh(x);
  if (name == "gelu") return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  if (name == "elu") return x > 0 ? x : std::exp(x) - 1;
  if (name == "selu") return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (std::exp(x) - 1));
  if (name == "softplus") return std::log1p(std::exp(x));
  if (name == "leaky_relu") return x > 0 ? x : 0.2 * x;
  if (name == "swish" || name == "silu") return x / (1 + std::exp(-x));
  if (name == "hard_sigmoid") return std::clamp(x / 6 + 0.5, 0.0, 1.0);
  if (name == "linear") return x;
  // Keras 3's definitions (keras.src.backend.jax.nn and jax.nn), with their default arguments.
  if (name == "hard_silu" || name == "hard_swish") return x * std::clamp(x + 3, 0.0, 6.0) / 6;
  if (name == "hard_tanh") return std::clamp(x, -1.0, 1.0);
  if (name == "mish") return x * std::tanh(std::log1p(std::exp(x)));
  if (name == "log_sigmoid") return -std::log1p(std::exp(-x));
  if (name == "tanh_shrink") return x - std::tanh(x);
  if (name == "celu") return std::max(0.0, x) + std::min(0.0, std::exp(x) - 1);
  if (name == "soft_shrink") return x > 0.5 ? x - 0.5 : (x < -0.5 ? x + 0.5 : 0.0);
  if (name == "hard_shrink") return std::fabs(x) > 0.5 ? x : 0.0;
  if (name == "squareplus") return (x + std::sqrt(x * x + 4)) / 2;
  if (name == "sparse_plus") return x <= -1 ? 0.0 : (x >= 1 ? x : (x + 1) * (x + 1) / 4);
  if (name == "sparse_sigmoid") return x <= -1 ? 0.0 : (x >= 1 ? 1.0 : (x + 1) / 2);
  ADD_FAILURE() << "no reference for " << name;
  return 0;
}

TEST(Layers, DenseMatchesLoopReference) {
  clear_session();
  for (const std::string act : {"linear", "relu", "tanh"}) {
    const std::int64_t batch = 5, in = 7, units = 3;
    auto dense = std::make_shared<Dense>(units, DenseOptions{.activation = act});
    const auto x = test::random_vector(std::size_t(batch * in), -1.f, 1.f, 1);
    const auto y = run_layer([&](const Tensor& t) { return (*dense)(t); }, {batch, in}, x);
    const auto k = dense->kernel()->to_vector();
    const auto b = test::random_vector(std::size_t(units), -1.f, 1.f, 2);
    dense->bias()->assign(b);
    const auto y2 = run_layer([&](const Tensor& t) { return dense->trace(t); }, {batch, in}, x);
    for (std::int64_t r = 0; r < batch; ++r)
      for (std::int64_t u = 0; u < units; ++u) {
        double acc = b[std::size_t(u)];
        for (std::int64_t i = 0; i < in; ++i) acc += double(x[std::size_t(r * in + i)]) * k[std::size_t(i * units + u)];
        EXPECT_NEAR(y2[std::size_t(r * units + u)], reference_activation(act, acc), 1e-5) << act;
      }
    EXPECT_EQ(y.size(), std::size_t(batch * units));
  }
}

TEST(Layers, DenseOnRank3InputsActsOnTheLastAxis) {
  clear_session();
  auto dense = std::make_shared<Dense>(2, DenseOptions{.use_bias = false});
  const auto x = test::random_vector(2 * 3 * 4, -1.f, 1.f, 3);
  Shape out_shape;
  const auto y = run_layer([&](const Tensor& t) { return (*dense)(t); }, {2, 3, 4}, x, Mode::inference, &out_shape);
  EXPECT_EQ(out_shape, (Shape{2, 3, 2}));
  const auto k = dense->kernel()->to_vector();
  for (int r = 0; r < 6; ++r)
    for (int u = 0; u < 2; ++u) {
      double acc = 0;
      for (int i = 0; i < 4; ++i) acc += double(x[std::size_t(r * 4 + i)]) * k[std::size_t(i * 2 + u)];
      EXPECT_NEAR(y[std::size_t(r * 2 + u)], acc, 1e-5);
    }
}

TEST(Layers, ActivationsByNameMatchFormulas) {
  clear_session();
  const auto x = test::random_vector(64, -4.f, 4.f, 4);
  for (const std::string name : {"relu", "sigmoid", "tanh", "gelu", "elu", "selu", "softplus", "leaky_relu", "swish", "silu",
                                 "hard_sigmoid", "linear", "hard_silu", "hard_swish", "hard_tanh", "mish", "log_sigmoid",
                                 "tanh_shrink", "celu", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus", "sparse_sigmoid"}) {
    const auto y = run_layer([&](const Tensor& t) { return Activation(name)(t); }, {8, 8}, x);
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], reference_activation(name, x[i]), 2e-5) << name << " at " << x[i];
  }
  // softmax over the last axis
  const auto y = run_layer([&](const Tensor& t) { return Activation("softmax")(t); }, {8, 8}, x);
  for (int r = 0; r < 8; ++r) {
    double z = 0;
    for (int c = 0; c < 8; ++c) z += std::exp(double(x[std::size_t(r * 8 + c)]));
    for (int c = 0; c < 8; ++c) EXPECT_NEAR(y[std::size_t(r * 8 + c)], std::exp(double(x[std::size_t(r * 8 + c)])) / z, 1e-6);
  }
  // glu: the first half of the last axis gated by the sigmoid of the second.
  const auto g = run_layer([&](const Tensor& t) { return Activation("glu")(t); }, {8, 8}, x);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 4; ++c) {
      const double a = x[std::size_t(r * 8 + c)], b = x[std::size_t(r * 8 + c + 4)];
      EXPECT_NEAR(g[std::size_t(r * 4 + c)], a / (1 + std::exp(-b)), 1e-6);
    }
  EXPECT_THROW(Activation("rellu"), std::invalid_argument);
}

TEST(Layers, FlattenReshapeRescaling) {
  clear_session();
  const auto x = test::random_vector(2 * 3 * 4, -1.f, 1.f, 5);
  Shape s;
  auto y = run_layer([&](const Tensor& t) { return Flatten()(t); }, {2, 3, 4}, x, Mode::inference, &s);
  EXPECT_EQ(s, (Shape{2, 12}));
  EXPECT_EQ(y, x);
  y = run_layer([&](const Tensor& t) { return Reshape({4, -1})(t); }, {2, 3, 4}, x, Mode::inference, &s);
  EXPECT_EQ(s, (Shape{2, 4, 3}));
  EXPECT_EQ(y, x);
  EXPECT_THROW(run_layer([&](const Tensor& t) { return Reshape({5, -1})(t); }, {2, 3, 4}, x), std::invalid_argument);
  y = run_layer([&](const Tensor& t) { return Rescaling(0.5f, {.offset = 1.f})(t); }, {2, 12}, x);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i] * 0.5f + 1.f);
}

TEST(Layers, DropoutIsInvertedAndOnlyActiveWhileTraining) {
  clear_session();
  const std::vector<float> x(10000, 1.f);
  auto y = run_layer([&](const Tensor& t) { return Dropout(0.3f)(t); }, {100, 100}, x, Mode::inference);
  EXPECT_EQ(y, x);
  y = run_layer([&](const Tensor& t) { return Dropout(0.3f)(t); }, {100, 100}, x, Mode::training);
  int zeros = 0;
  for (float v : y) {
    if (v == 0.f) ++zeros;
    else EXPECT_NEAR(v, 1.f / 0.7f, 1e-6);
  }
  EXPECT_NEAR(zeros / 10000.0, 0.3, 0.03);
}

TEST(Layers, KerasNamesAndConfigs) {
  clear_session();
  Dense a(3), b(4, {.activation = "relu"});
  EXPECT_EQ(a.name(), "dense");
  EXPECT_EQ(b.name(), "dense_1");
  const Json c = b.get_config();
  EXPECT_EQ(c["units"], 4);
  EXPECT_EQ(c["activation"], "relu");
  EXPECT_EQ(c["kernel_initializer"]["class_name"], "GlorotUniform");
  EXPECT_EQ(c["bias_initializer"]["class_name"], "Zeros");
  // The registry rebuilds a layer from its Keras config.
  const LayerPtr rebuilt = layer_from_config("Dense", c);
  EXPECT_EQ(rebuilt->get_config(), c);
  try {
    layer_from_config("Dence", c);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "unknown layer 'Dence'; did you mean 'Dense'?");
  }
  EXPECT_THROW(layer_from_config("Dense", Json{{"units", 3}, {"kernel_size", 2}}), std::invalid_argument);
  const LayerPtr input = layer_from_config("InputLayer", Json{{"batch_input_shape", {nullptr, 28, 28}}, {"name", "in"}});
  EXPECT_EQ(std::static_pointer_cast<InputLayer>(input)->batch_shape(), (Shape{-1, 28, 28}));
  // Keras's other names for a class make that class, which saves under its own name.
  const std::pair<const char*, const char*> aliases[] = {
      {"MaxPool2D", "MaxPooling2D"}, {"AvgPool1D", "AveragePooling1D"}, {"GlobalAvgPool2D", "GlobalAveragePooling2D"},
      {"GlobalMaxPool1D", "GlobalMaxPooling1D"}, {"Convolution2D", "Conv2D"}, {"Convolution1DTranspose", "Conv1DTranspose"},
      {"SeparableConvolution2D", "SeparableConv2D"}};
  for (const auto& [alias, name] : aliases) {
    const Json config = std::string(name).find("Conv") != std::string::npos ? Json{{"filters", 2}, {"kernel_size", 3}} : Json::object();
    EXPECT_EQ(layer_from_config(alias, config)->class_name(), name) << alias;
  }
}

double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / double(v.size());
}

double variance_of(const std::vector<float>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return s / double(v.size());
}

TEST(Initializers, VarianceScalingFamilyHasKerasVariance) {
  const Shape shape{300, 200};
  std::vector<float> v(60000);
  struct Case {
    const char* name;
    double variance;
    double bound;  // 0: unbounded
  };
  const double fan_in = 300, fan_avg = 250;
  for (const Case& c : {Case{"glorot_uniform", 1 / fan_avg, std::sqrt(3 / fan_avg)}, Case{"glorot_normal", 1 / fan_avg, 2 * std::sqrt(1 / fan_avg) / 0.8796},
                        Case{"he_uniform", 2 / fan_in, std::sqrt(6 / fan_in)}, Case{"he_normal", 2 / fan_in, 2 * std::sqrt(2 / fan_in) / 0.8796},
                        Case{"lecun_uniform", 1 / fan_in, std::sqrt(3 / fan_in)}, Case{"lecun_normal", 1 / fan_in, 2 * std::sqrt(1 / fan_in) / 0.8796}}) {
    get_initializer(c.name)->fill(v, shape, 7);
    EXPECT_NEAR(mean_of(v), 0, 0.02 * std::sqrt(c.variance)) << c.name;
    EXPECT_NEAR(variance_of(v), c.variance, 0.03 * c.variance) << c.name;
    for (float x : v) ASSERT_LE(std::abs(x), c.bound * 1.0001) << c.name;
  }
  get_initializer(Json{{"class_name", "RandomNormal"}, {"config", {{"mean", 1.0}, {"stddev", 0.5}}}})->fill(v, shape, 8);
  EXPECT_NEAR(mean_of(v), 1.0, 0.01);
  EXPECT_NEAR(variance_of(v), 0.25, 0.01);
  get_initializer(Json{{"class_name", "RandomUniform"}, {"config", {{"minval", 2.0}, {"maxval", 3.0}}}})->fill(v, shape, 9);
  for (float x : v) ASSERT_TRUE(x >= 2.f && x < 3.f);
  get_initializer(Json{{"class_name", "Constant"}, {"config", {{"value", 0.25}}}})->fill(v, shape, 0);
  for (float x : v) ASSERT_EQ(x, 0.25f);
  EXPECT_THROW(get_initializer("glorot_unifrom"), std::invalid_argument);
  // Keras 3.10+'s input_axes and output_axes: the fans are the products of those axes of the shape,
  // here (10, 20, 30) with fan_in 10 * 30 and fan_out 20 (an einsum kernel), both given or ignored.
  const Shape einsum{10, 20, 30};
  std::vector<float> e(6000);
  get_initializer(Json{{"class_name", "VarianceScaling"},
                       {"config", {{"scale", 2.0}, {"mode", "fan_avg"}, {"distribution", "uniform"}, {"input_axes", {0, -1}}, {"output_axes", {1}}}}})
      ->fill(e, einsum, 10);
  EXPECT_NEAR(variance_of(e), 2 / 160.0, 0.04 * 2 / 160.0);
  auto he = get_initializer(Json{{"class_name", "HeNormal"}, {"config", {{"seed", nullptr}, {"input_axes", {0, 2}}, {"output_axes", {1}}}}});
  he->fill(e, einsum, 11);
  EXPECT_NEAR(variance_of(e), 2 / 300.0, 0.04 * 2 / 300.0);
  EXPECT_EQ(he->get_config()["input_axes"], Json({0, 2}));
  get_initializer(Json{{"class_name", "GlorotUniform"}, {"config", {{"input_axes", {0}}, {"output_axes", nullptr}}}})->fill(e, einsum, 12);
  EXPECT_NEAR(variance_of(e), 1 / (0.5 * (20 * 10 + 30 * 10)), 0.04 / 250) << "one of the two: Keras's default fans";
  EXPECT_FALSE(get_initializer("glorot_uniform")->get_config().contains("input_axes")) << "left out, as older Keras reads no such key";
  EXPECT_THROW(get_initializer(Json{{"class_name", "HeNormal"}, {"config", {{"input_axes", "first"}}}}), std::invalid_argument);
}

TEST(Initializers, OrthogonalIsOrthonormal) {
  for (const Shape shape : {Shape{6, 4}, Shape{4, 6}, Shape{2, 3, 4}}) {
    std::vector<float> v(static_cast<std::size_t>(shape.numel()));
    initializers::Orthogonal(2.f).fill(v, shape, 3);
    const std::int64_t cols = shape[shape.rank() - 1], rows = shape.numel() / cols;
    // Q^T Q = gain^2 I for tall, Q Q^T = gain^2 I for wide.
    const bool tall = rows >= cols;
    const std::int64_t n = tall ? cols : rows, m = tall ? rows : cols;
    for (std::int64_t a = 0; a < n; ++a)
      for (std::int64_t b = 0; b < n; ++b) {
        double dot = 0;
        for (std::int64_t k = 0; k < m; ++k)
          dot += tall ? double(v[std::size_t(k * cols + a)]) * v[std::size_t(k * cols + b)]
                      : double(v[std::size_t(a * cols + k)]) * v[std::size_t(b * cols + k)];
        EXPECT_NEAR(dot, a == b ? 4.0 : 0.0, 1e-5) << shape.to_string();
      }
  }
}

TEST(Initializers, SameSeedSameWeights) {
  clear_session();
  set_random_seed(11);
  Dense a(5);
  a.trace(ops::placeholder({-1, 3}));
  set_random_seed(11);
  Dense b(5);
  b.trace(ops::placeholder({-1, 3}));
  EXPECT_EQ(a.kernel()->to_vector(), b.kernel()->to_vector());
  set_random_seed(12);
  Dense c(5);
  c.trace(ops::placeholder({-1, 3}));
  EXPECT_NE(a.kernel()->to_vector(), c.kernel()->to_vector());
}

}  // namespace
}  // namespace strata
