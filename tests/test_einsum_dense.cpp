// EinsumDense against Keras 3 (scripts/fixtures/keras_einsum_dense.py): eight layer configs of each
// equation form Keras takes, outputs with Keras's weights; a Keras-saved model with two EinsumDense layers
// predicts as Keras did, round-trips, loads back into Keras and trains its next epoch as Keras did. The
// einsum itself is checked against its definition in test_einsum.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasEinsumDenseReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasEinsumDenseReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_einsum_dense.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasEinsumDenseReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_einsum_dense.json")["cases"].size())));

TEST(EinsumDense, KerasModelPredictsAsKerasDid) { test::check_predicts_as_keras_did("einsum_dense_model"); }
TEST(EinsumDense, KerasModelRoundTrips) { test::check_saved_files_round_trip("einsum_dense_model"); }
TEST(EinsumDense, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("einsum_dense_model"); }

TEST(EinsumDense, KerasModelTrainsItsNextEpochAsKeras) {
  const Json record = test::read_record("einsum_dense_model");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "einsum_dense_model.keras");
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(EinsumDense, GlorotFansComeFromTheEquation) {
  // "abc,cde->abde": kernel (c, d, e) = (4, 2, 3) has 4 input units and 6 output units, so Glorot's limit is
  // sqrt(6 / 10) ~ 0.775, not the convolution-style sqrt(6 / 20) ~ 0.548 the kernel's rank alone would give.
  clear_session();
  auto layer = std::make_shared<EinsumDense>("abc,cde->abde", std::vector<std::int64_t>{-1, 2, 3}, EinsumDenseOptions{.bias_axes = "de"});
  Sequential model({Input({5, 4}), layer});
  EXPECT_EQ(layer->kernel()->shape(), Shape({4, 2, 3}));
  EXPECT_EQ(layer->bias()->shape(), Shape({2, 3}));
  EXPECT_EQ(model.outputs()[0].shape(), Shape({-1, 5, 2, 3}));
  const auto k = layer->kernel()->to_vector();
  double largest = 0;
  for (float v : k) largest = std::max(largest, double(std::fabs(v)));
  EXPECT_LE(largest, std::sqrt(0.6) + 1e-6);
  EXPECT_GT(largest, 0.6);
  EXPECT_EQ(layer->get_config()["kernel_initializer"]["class_name"], "GlorotUniform");
  EXPECT_FALSE(layer->get_config()["kernel_initializer"]["config"].contains("input_axes")) << "the config keeps the initializer as given";
}

TEST(EinsumDense, ErrorsNameTheLayerAndTheProblem) {
  clear_session();
  auto build = [](const std::string& equation, std::vector<std::int64_t> out, const std::string& bias, Shape in) {
    Sequential({Input(in), EinsumDense(equation, std::move(out), {.bias_axes = bias, .name = "proj"})});
  };
  test::expect_error_containing([&] { build("ab,bc", {4}, "", {3}); }, "EinsumDense 'proj': equation 'ab,bc' is not of the form");
  test::expect_error_containing([&] { build("ab,bc->ac", {4}, "d", {3}); }, "bias axis 'd' is not in the output 'ac'");
  test::expect_error_containing([&] { build("abc,cd->abd", {5, 4}, "", {3, 2}); }, "dimension 'b' is 3 in the input (None, 3, 2) but 5 in output_shape (5, 4)");
  test::expect_error_containing([&] { build("abc,cd->abd", {-1, 4}, "", {2}); }, "names 3 input dimensions, but the input is (None, 2)");
  test::expect_error_containing([&] { build("ab,bce->ac", {4}, "", {3}); }, "kernel dimension 'e' of 'ab,bce->ac' is in neither");
  test::expect_error_containing([&] { build("ab,bc->acd", {4, 2}, "", {3}); }, "output dimension 'd' of 'ab,bc->acd' is in neither");
  test::expect_error_containing(
      [] { layer_from_config("EinsumDense", {{"equation", "ab,bc->ac"}, {"output_shape", 4}, {"lora_rank", 2}}); }, "LoRA");
}

}  // namespace
}  // namespace strata
