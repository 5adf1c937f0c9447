// The layers of Keras's ConvNeXt applications: a Keras-saved ConvNeXt block
// (scripts/fixtures/keras_convnext_layers.py) predicts as Keras did, round-trips and loads back into Keras;
// LayerScale against a loop, with its gradient by finite differences through training; StochasticDepth
// keeps or drops each sample's whole branch while training, at its rate, and passes it in inference.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(ConvNextLayers, KerasBlockPredictsAsKerasDid) { test::check_predicts_as_keras_did("convnext_block"); }
TEST(ConvNextLayers, KerasBlockRoundTrips) { test::check_saved_files_round_trip("convnext_block"); }
TEST(ConvNextLayers, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("convnext_block"); }

TEST(ConvNextLayers, LayerScaleMultipliesEachChannel) {
  clear_session();
  auto scale = std::make_shared<LayerScale>(0.25f, 3);
  Tensor in = Input({2, 3});
  Model model({in}, {(*scale)(in)});
  EXPECT_EQ(model.get_weights()[0].to_floats(), std::vector<float>(3, 0.25f)) << "gamma starts at init_values";
  const std::vector<float> gamma{2.f, -1.f, 0.5f};
  model.set_weights({Array::from_floats(gamma, {3})});
  const auto x = test::random_vector(12, -1.f, 1.f, 3);
  const auto y = model.predict(Array::from_floats(x, {2, 2, 3}), {.verbose = 0}).to_floats();
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i] * gamma[i % 3]);
  // One SGD step on sum(y) / n (MSE against zeros' gradient is 2y / n): gamma_c -= lr * sum_i 2 y_i x_i / n.
  model.compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.1f}), .loss = "mse"});
  model.fit(Array::from_floats(x, {2, 2, 3}), Array::from_floats(std::vector<float>(12, 0.f), {2, 2, 3}), {.epochs = 1, .batch_size = 2, .verbose = 0});
  const auto trained = model.get_weights()[0].to_floats();
  for (int c = 0; c < 3; ++c) {
    double grad = 0;
    for (std::size_t i = std::size_t(c); i < x.size(); i += 3) grad += 2.0 * x[i] * gamma[std::size_t(c)] * x[i] / 12.0;
    EXPECT_NEAR(trained[std::size_t(c)], gamma[std::size_t(c)] - 0.1 * grad, 1e-6);
  }
  EXPECT_EQ(scale->get_config()["projection_dim"], 3);
  test::expect_error_containing([] { Sequential({Input({2, 4}), LayerScale(0.1f, 3)}); }, "projection_dim 3 does not match the input's last dimension 4");
}

TEST(ConvNextLayers, StochasticDepthDropsWholeSamplesWhileTraining) {
  clear_session();
  const int n = 400;
  Tensor in = Input({3, 2});
  Model model({in}, {StochasticDepth(0.3f)(in)});
  const Array ones = Array::from_floats(std::vector<float>(std::size_t(n) * 6, 1.f), {n, 3, 2});
  EXPECT_EQ(model.predict(ones, {.verbose = 0}).to_floats(), ones.to_floats()) << "inference passes the input";
  const auto runs = test::training_runs(std::make_shared<StochasticDepth>(0.3f), {n, 3, 2}, ones.to_floats(), 2);
  EXPECT_NE(runs[0], runs[1]) << "fresh draws each step";
  const std::vector<float>& y = runs[0];
  int dropped = 0;
  for (int s = 0; s < n; ++s) {
    const float first = y[std::size_t(s) * 6];
    ASSERT_TRUE(first == 0.f || std::fabs(first - 1.f / 0.7f) < 1e-5) << "sample " << s << ": " << first;
    for (int k = 1; k < 6; ++k) ASSERT_EQ(y[std::size_t(s) * 6 + std::size_t(k)], first) << "sample " << s << " is dropped or kept whole";
    dropped += first == 0.f;
  }
  EXPECT_NEAR(double(dropped) / n, 0.3, 0.07);
}

}  // namespace
}  // namespace strata
