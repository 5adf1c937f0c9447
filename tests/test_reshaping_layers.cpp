// Permute, RepeatVector, Identity, GaussianNoise and GaussianDropout: against outputs recorded from Keras 3
// (scripts/fixtures/keras_reshaping_layers.py), loops written here, the noise's statistics while training,
// and Keras's LSTM autoencoder saved by Keras. AlphaDropout against Keras's rule and its moments.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "api/strata.h"
#include "graph/program.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_near_all;
using test::run;
using test::two_training_runs;

class KerasReshapingReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasReshapingReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_reshaping_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasReshapingReference,
        ::testing::Range(0, int(test::load_layer_fixture("keras_reshaping_layers.json")["cases"].size())));

TEST(ReshapingLayers, PermuteAndRepeatVectorMatchLoops) {
  clear_session();
  const Shape shape{2, 3, 4, 5};
  const auto x = test::random_vector(std::size_t(shape.numel()), -1, 1, 31);
  const auto permute = std::make_shared<Permute>(std::vector<int>{3, 1, 2});
  Shape out_shape;
  const auto y = run([&](const Tensor& t) { return permute->trace(t); }, shape, x, &out_shape);
  ASSERT_EQ(out_shape, Shape({2, 5, 3, 4}));
  std::vector<double> want;
  for (int b = 0; b < 2; ++b)
    for (int k = 0; k < 5; ++k)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) want.push_back(x[std::size_t(((b * 3 + i) * 4 + j) * 5 + k)]);
  expect_near_all(y, want, 0, "Permute");

  const auto repeat = std::make_shared<RepeatVector>(4);
  const auto v = test::random_vector(6, -1, 1, 32);
  const auto r = run([&](const Tensor& t) { return repeat->trace(t); }, {2, 3}, v, &out_shape);
  ASSERT_EQ(out_shape, Shape({2, 4, 3}));
  want.clear();
  for (int b = 0; b < 2; ++b)
    for (int n = 0; n < 4; ++n)
      for (int f = 0; f < 3; ++f) want.push_back(v[std::size_t(b * 3 + f)]);
  expect_near_all(r, want, 0, "RepeatVector");
}

TEST(ReshapingLayers, RepeatVectorGradientSumsTheCopies) {
  // Dense(1, no bias) -> RepeatVector(3), mean squared error to zeros: d loss / d w = sum over copies.
  clear_session();
  auto dense = std::make_shared<Dense>(1, DenseOptions{.use_bias = false, .kernel_initializer = Json{{"class_name", "Constant"}, {"config", {{"value", 0.5}}}}});
  Sequential model({Input({2}), LayerRef(dense), RepeatVector(3)});
  model.compile({.optimizer = SGD({.learning_rate = 0.1f}), .loss = "mean_squared_error"});
  const std::vector<float> xs{1.f, 2.f, -1.f, 0.5f};
  model.train_on_batch(Array::from_floats(xs, {2, 2}), Array::from_floats(std::vector<float>(6, 0.f), {2, 3, 1}));
  // y_b = 0.5 (x_b0 + x_b1) repeated 3 times; loss = mean over 6 of y^2; d/dw_i = sum_b 3 * 2 y_b x_bi / 6.
  for (int i = 0; i < 2; ++i) {
    double grad = 0;
    for (int b = 0; b < 2; ++b) grad += 3 * 2 * 0.5 * (xs[std::size_t(b * 2)] + xs[std::size_t(b * 2 + 1)]) * xs[std::size_t(b * 2 + i)] / 6;
    EXPECT_NEAR(dense->kernel()->to_vector()[std::size_t(i)], 0.5 - 0.1 * grad, 1e-6) << "kernel " << i;
  }
}


void expect_moments(const std::vector<double>& values, double mean, double stddev, const std::string& what) {
  double m = 0, v = 0;
  for (double e : values) m += e / double(values.size());
  for (double e : values) v += (e - m) * (e - m) / double(values.size());
  // 40,000 draws: the sample mean is within 4 standard errors, the standard deviation within 2 %.
  EXPECT_NEAR(m, mean, 4 * stddev / std::sqrt(double(values.size()))) << what;
  EXPECT_NEAR(std::sqrt(v), stddev, 0.02 * stddev) << what;
}

TEST(NoiseLayers, NoiseWhileTrainingOnlyWithKerasMoments) {
  const Shape shape{200, 200};
  const auto x = test::random_away_from_zero(std::size_t(shape.numel()), 0.5f, 2.f, 33);
  {
    clear_session();
    const auto noise = std::make_shared<GaussianNoise>(0.3f);
    const auto [a, b] = two_training_runs(noise, shape, x);
    std::vector<double> added;
    for (std::size_t i = 0; i < x.size(); ++i) added.push_back(double(a[i]) - x[i]);
    expect_moments(added, 0.0, 0.3, "GaussianNoise");
    EXPECT_NE(a, b) << "a fresh draw each step";
    expect_near_all(run([&](const Tensor& t) { return noise->trace(t); }, shape, x), std::vector<double>(x.begin(), x.end()), 0,
                    "GaussianNoise in inference");
  }
  {
    clear_session();
    const auto dropout = std::make_shared<GaussianDropout>(0.2f);
    const auto [a, b] = two_training_runs(dropout, shape, x);
    std::vector<double> factor;
    for (std::size_t i = 0; i < x.size(); ++i) factor.push_back(double(a[i]) / x[i]);
    expect_moments(factor, 1.0, std::sqrt(0.2 / 0.8), "GaussianDropout");
    EXPECT_NE(a, b);
    expect_near_all(run([&](const Tensor& t) { return dropout->trace(t); }, shape, x), std::vector<double>(x.begin(), x.end()), 0,
                    "GaussianDropout in inference");
  }
}

TEST(NoiseLayers, AlphaDropoutKeepsOrSaturatesThenRestoresTheMoments) {
  // Keras's rule: kept values become a * x + b, dropped ones a * alpha_p + b (alpha_p = -alpha * scale of
  // SELU); on SELU-normalised inputs (mean 0, variance 1) the output keeps mean 0 and variance 1.
  const Shape shape{200, 200};
  const double rate = 0.2, alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946;
  const double a = 1.0 / std::sqrt((1 - rate) * (1 + rate * alpha_p * alpha_p)), b = -a * alpha_p * rate;
  std::vector<float> x(std::size_t(shape.numel()));
  std::mt19937 gen(34);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& v : x) v = normal(gen);
  clear_session();
  const auto dropout = std::make_shared<AlphaDropout>(float(rate));
  const auto [first, second] = two_training_runs(dropout, shape, x);
  std::size_t dropped = 0;
  std::vector<double> out;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double kept_value = a * x[i] + b, dropped_value = a * alpha_p + b;
    const bool is_dropped = std::abs(first[i] - dropped_value) < 1e-5;
    if (is_dropped) ++dropped;
    else ASSERT_NEAR(first[i], kept_value, 1e-5) << i;
    out.push_back(first[i]);
  }
  // 40,000 Bernoulli(0.2) draws: within 4 standard errors (0.008).
  EXPECT_NEAR(double(dropped) / double(x.size()), rate, 0.008);
  expect_moments(out, 0.0, 1.0, "AlphaDropout");
  EXPECT_NE(first, second) << "a fresh draw each step";
  expect_near_all(run([&](const Tensor& t) { return dropout->trace(t); }, shape, x), std::vector<double>(x.begin(), x.end()), 0,
                  "AlphaDropout in inference");
  const LayerPtr rebuilt = layer_from_config("AlphaDropout", dropout->get_config());
  EXPECT_EQ(rebuilt->get_config(), dropout->get_config());
  test::expect_error_containing([] { layer_from_config("AlphaDropout", Json{{"rate", 0.1}, {"noise_shape", {nullptr, 1}}}); },
                                "noise_shape");
  test::expect_error_containing([] { layer_from_config("AlphaDropout", Json{{"rate", -0.1}}); }, "rate must be in [0, 1]");
}

TEST(ReshapingLayers, Errors) {
  clear_session();
  test::expect_error_containing([] { Permute({1, 1}); }, "dims (1, 1) must be a permutation of 1 .. 2");
  test::expect_error_containing([] { Sequential({Input({3, 4, 5}), Permute({2, 1})}); }, "dims (2, 1) need inputs of rank 3, got (None, 3, 4, 5)");
  test::expect_error_containing([] { Sequential({Input({3, 4}), RepeatVector(2)}); }, "RepeatVector expects inputs of shape (batch, features), got (None, 3, 4)");
  test::expect_error_containing([] { layer_from_config("RepeatVector", Json{{"n", 0}}); }, "n must be positive");
  test::expect_error_containing([] { layer_from_config("GaussianDropout", Json{{"rate", 1.5}}); }, "rate must be in [0, 1]");
  test::expect_error_containing([] { layer_from_config("GaussianNoise", Json{{"stddev", -1}}); }, "stddev must be at least 0");
  test::expect_error_containing([] { layer_from_config("Identity", Json{{"units", 3}}); }, "unknown or unsupported config key 'units'");
}

// Keras's LSTM autoencoder with noise layers and Permutes.
TEST(ReshapingLayers, KerasAutoencoderPredictsAsKerasDid) { test::check_predicts_as_keras_did("seq_autoencoder"); }
TEST(ReshapingLayers, KerasAutoencoderSavedFilesRoundTrip) { test::check_saved_files_round_trip("seq_autoencoder"); }
TEST(ReshapingLayers, KerasLoadsStrataAutoencoder) { test::check_keras_loads_strata_file("seq_autoencoder"); }

}  // namespace
}  // namespace strata
