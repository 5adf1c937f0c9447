// Activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax): each against a loop reference in double written
// from Keras's definition, against outputs recorded from Keras 3 for configs as Keras writes them
// (scripts/fixtures/keras_activation_layers.py), PReLU's alpha gradient against a hand-derived update, and
// a small convnet saved by Keras that uses them all.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_near_all;
using test::run;

class KerasActivationReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasActivationReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_activation_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasActivationReference,
        ::testing::Range(0, int(test::load_layer_fixture("keras_activation_layers.json")["cases"].size())));

// Keras's documented ReLU: max_value at and above it, x from the threshold up, negative_slope * (x - threshold) below.
double relu_reference(double x, std::optional<double> max_value, double slope, double threshold) {
  if (max_value && x >= *max_value) return *max_value;
  if (x > threshold) return x;
  return slope * (x - threshold);
}

TEST(ActivationLayers, ReluLeakyEluMatchTheirDefinitions) {
  const Shape shape{4, 25};
  // Away from the kinks (0, the thresholds, max_value), where one-sided definitions may differ.
  auto x = test::random_away_from_zero(std::size_t(shape.numel()), 0.05f, 8.f, 3);
  for (float& v : x)
    for (float kink : {0.5f, 1.5f, 2.5f, 6.f})
      if (std::fabs(v - kink) < 0.05f) v += 0.1f;
  struct Case { std::optional<double> max_value; double slope, threshold; };
  for (const Case& k : {Case{{}, 0, 0}, Case{6.0, 0, 0}, Case{6.0, 0.1, 0}, Case{2.5, 0.2, 0.5}, Case{{}, 0.3, 1.5}, Case{{}, 0.05, 0}}) {
    SCOPED_TRACE(::testing::Message() << "max " << (k.max_value ? *k.max_value : -1) << " slope " << k.slope << " threshold " << k.threshold);
    clear_session();
    ReLU layer({.max_value = k.max_value ? std::optional<float>(float(*k.max_value)) : std::nullopt,
                .negative_slope = float(k.slope), .threshold = float(k.threshold)});
    std::vector<double> want;
    for (float v : x) want.push_back(relu_reference(v, k.max_value, k.slope, k.threshold));
    expect_near_all(run([&](const Tensor& t) { return layer(t); }, shape, x), want, 1e-6, "ReLU");
  }
  {
    clear_session();
    LeakyReLU leaky;  // Keras's default slope, 0.3
    std::vector<double> want;
    for (float v : x) want.push_back(v > 0 ? v : 0.3 * v);
    expect_near_all(run([&](const Tensor& t) { return leaky(t); }, shape, x), want, 1e-6, "LeakyReLU");
    ELU elu(0.7f);
    want.clear();
    for (float v : x) want.push_back(v > 0 ? v : 0.7 * std::expm1(double(v)));
    expect_near_all(run([&](const Tensor& t) { return elu(t); }, shape, x), want, 1e-6, "ELU");
  }
}

TEST(ActivationLayers, PreluSharesAlphaAlongSharedAxes) {
  const Shape shape{2, 3, 4, 5};
  const auto x = test::random_away_from_zero(std::size_t(shape.numel()), 0.01f, 2.f, 5);
  clear_session();
  const auto layer = std::make_shared<PReLU>(PReLUOptions{.shared_axes = {1, 2}});
  (void)run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  ASSERT_EQ(layer->alpha()->shape(), Shape({1, 1, 5}));
  const auto alpha = test::random_vector(5, -1, 1, 6);
  layer->alpha()->assign(alpha);
  std::vector<double> want;
  for (std::size_t i = 0; i < x.size(); ++i) want.push_back(x[i] > 0 ? x[i] : alpha[i % 5] * double(x[i]));
  expect_near_all(run([&](const Tensor& t) { return layer->trace(t); }, shape, x), want, 1e-6, "PReLU");
}

TEST(ActivationLayers, PreluAlphaLearnsByItsGradient) {
  // One SGD step on the mean squared error: d loss / d alpha[j] = sum over positions p sharing alpha[j] of
  // 2 (y_p - t_p) / N * min(x_p, 0).
  clear_session();
  const std::int64_t n = 3, steps = 4, features = 2;
  auto prelu = std::make_shared<PReLU>(PReLUOptions{.alpha_initializer = Json{{"class_name", "Constant"}, {"config", {{"value", 0.25}}}},
                                                    .shared_axes = {1}});
  Sequential model({Input({steps, features}), LayerRef(prelu)});
  const float learning_rate = 0.5f;
  model.compile({.optimizer = SGD({.learning_rate = learning_rate}), .loss = "mean_squared_error"});
  const auto xs = test::random_vector(std::size_t(n * steps * features), -2, 2, 8);
  const auto ts = test::random_vector(xs.size(), -1, 1, 9);
  std::vector<double> grad(features, 0.0);
  for (std::size_t p = 0; p < xs.size(); ++p) {
    const double y = xs[p] > 0 ? xs[p] : 0.25 * xs[p];
    grad[p % features] += 2 * (y - ts[p]) / double(xs.size()) * std::min(double(xs[p]), 0.0);
  }
  model.train_on_batch(Array::from_floats(xs, {n, steps, features}), Array::from_floats(ts, {n, steps, features}));
  const auto alpha = prelu->alpha()->to_vector();
  ASSERT_EQ(alpha.size(), std::size_t(features));
  for (std::size_t j = 0; j < alpha.size(); ++j) EXPECT_NEAR(alpha[j], 0.25 - learning_rate * grad[j], 1e-6) << "alpha " << j;
}

TEST(ActivationLayers, SoftmaxOverOneOrSeveralAxes) {
  const Shape shape{2, 3, 4};
  const auto x = test::random_vector(std::size_t(shape.numel()), -3, 3, 10);
  for (const std::vector<int>& axes : {std::vector<int>{-1}, std::vector<int>{1}, std::vector<int>{1, 2}}) {
    SCOPED_TRACE(::testing::Message() << "axes " << axes.size() << " first " << axes[0]);
    clear_session();
    Softmax layer(axes);
    // Group the elements that share a normalisation: they agree on every axis not in `axes`.
    auto group = [&](std::size_t i) {
      const auto index = test::unravel(std::int64_t(i), shape);
      std::int64_t key = 0;
      for (int a = 0; a < shape.rank(); ++a) {
        const bool reduced = std::find(axes.begin(), axes.end(), a) != axes.end() || std::find(axes.begin(), axes.end(), a - shape.rank()) != axes.end();
        key = key * shape[a] + (reduced ? 0 : index[std::size_t(a)]);
      }
      return key;
    };
    std::vector<double> want(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      double total = 0;
      for (std::size_t j = 0; j < x.size(); ++j)
        if (group(j) == group(i)) total += std::exp(double(x[j]));
      want[i] = std::exp(double(x[i])) / total;
    }
    expect_near_all(run([&](const Tensor& t) { return layer(t); }, shape, x), want, 1e-6, "Softmax");
  }
}

TEST(ActivationLayers, ConfigsAndErrors) {
  clear_session();
  // tf.keras (Keras 2) writes LeakyReLU's slope as "alpha".
  const LayerPtr leaky = layer_from_config("LeakyReLU", Json{{"name", "lr"}, {"alpha", 0.2}});
  EXPECT_EQ(leaky->get_config()["negative_slope"].get<float>(), 0.2f);
  EXPECT_EQ(ReLU().name(), "re_lu");
  EXPECT_EQ(PReLU().name(), "p_re_lu");
  EXPECT_EQ(LeakyReLU().name(), "leaky_re_lu");
  test::expect_error_containing([] { layer_from_config("ReLU", Json{{"max_value", -1.0}}); }, "max_value must be at least 0");
  test::expect_error_containing([] { ReLU({.negative_slope = -0.1f}); }, "negative_slope must be at least 0");
  test::expect_error_containing([] { layer_from_config("Softmax", Json{{"axis", "last"}}); }, "'axis' must be an integer or a list");
  test::expect_error_containing([] { layer_from_config("ELU", Json{{"alpha", "one"}}); }, "ELU: 'alpha' must be a number");
  EXPECT_EQ(layer_from_config("PReLU", Json{{"alpha_constraint", "non_neg"}})->constraints().at("alpha")->class_name, "NonNeg");
  test::expect_error_containing([] { layer_from_config("PReLU", Json{{"alpha_constraint", "positive"}}); }, "PReLU: alpha_constraint: unsupported constraint");
  test::expect_error_containing([] { Sequential({Input({4, 3}), PReLU({.shared_axes = {3}})}); }, "shared axis 3");
}

// A MobileNet-style convnet saved by Keras with ReLU(6.), PReLU, LeakyReLU, ELU and Softmax layers.
TEST(ActivationLayers, KerasConvnetPredictsAsKerasDid) { test::check_predicts_as_keras_did("act_convnet"); }
TEST(ActivationLayers, KerasConvnetSavedFilesRoundTrip) { test::check_saved_files_round_trip("act_convnet"); }
TEST(ActivationLayers, KerasLoadsStrataConvnet) { test::check_keras_loads_strata_file("act_convnet"); }

}  // namespace
}  // namespace strata
