// ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: six configs run by Keras 3 (scripts/fixtures/keras_conv_lstm.py:
// strides, "same" padding, dilation, sequences, go_backwards, other activations, dropout at inference), a
// ConvLSTM1D against loops in double written from the cell's definition, and a Keras-saved next-frame model
// (two ConvLSTM2D, one from initial states, BatchNormalization, Conv3D) that predicts, round-trips, loads
// back into Keras and trains its next epoch as Keras did. Gradients through the steps are in test_gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasConvLstmReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasConvLstmReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_conv_lstm.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasConvLstmReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_conv_lstm.json")["cases"].size())));

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

TEST(ConvLSTM, MatchesLoopsInDouble) {
  // ConvLSTM1D, kernel 3, "same" padding, return_sequences, biases from the fixture's random values: per
  // step z = conv(x_t, W) + conv(h, U, same) + b, then Keras's gates i, f, c, o.
  clear_session();
  const int n = 2, T = 3, W = 5, C = 2, F = 2, k = 3, G = 4 * F;
  auto layer = std::make_shared<ConvLSTM1D>(F, 3, ConvLSTMOptions{.padding = "same", .return_sequences = true});
  const Shape shape{n, T, W, C};
  const auto x = test::random_vector(std::size_t(shape.numel()), -1, 1, 61);
  (void)test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  const auto kernel = test::random_vector(std::size_t(k * C * G), -0.5, 0.5, 62);
  const auto recurrent = test::random_vector(std::size_t(k * F * G), -0.5, 0.5, 63);
  const auto bias = test::random_vector(std::size_t(G), -0.5, 0.5, 64);
  layer->kernel()->assign(kernel);
  layer->recurrent_kernel()->assign(recurrent);
  layer->bias()->assign(bias);
  Shape out_shape;
  const auto y = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out_shape);
  ASSERT_EQ(out_shape, Shape({n, T, W, F}));
  std::vector<double> want;
  for (int b = 0; b < n; ++b) {
    std::vector<double> h(std::size_t(W * F), 0.0), c(std::size_t(W * F), 0.0);
    std::vector<std::vector<double>> outputs;
    for (int t = 0; t < T; ++t) {
      std::vector<double> z(std::size_t(W * G));
      for (int w = 0; w < W; ++w)
        for (int g = 0; g < G; ++g) {
          double sum = bias[std::size_t(g)];
          for (int q = 0; q < k; ++q) {
            const int at = w + q - 1;  // "same" with an odd kernel: one pixel each side
            if (at < 0 || at >= W) continue;
            for (int ch = 0; ch < C; ++ch)
              sum += double(x[std::size_t(((b * T + t) * W + at) * C + ch)]) * kernel[std::size_t((q * C + ch) * G + g)];
            for (int f = 0; f < F; ++f) sum += h[std::size_t(at * F + f)] * recurrent[std::size_t((q * F + f) * G + g)];
          }
          z[std::size_t(w * G + g)] = sum;
        }
      for (int w = 0; w < W; ++w)
        for (int f = 0; f < F; ++f) {
          const double* zw = &z[std::size_t(w * G)];
          const double i = sigmoid(zw[f]), fg = sigmoid(zw[F + f]), cand = std::tanh(zw[2 * F + f]), o = sigmoid(zw[3 * F + f]);
          double& cv = c[std::size_t(w * F + f)];
          cv = fg * cv + i * cand;
          h[std::size_t(w * F + f)] = o * std::tanh(cv);
        }
      want.insert(want.end(), h.begin(), h.end());
    }
  }
  test::expect_near_all(y, want, 1e-5, "ConvLSTM1D");
}

TEST(ConvLSTM, KerasModelPredictsAsKerasDid) { test::check_predicts_as_keras_did("conv_lstm_model"); }
TEST(ConvLSTM, KerasModelRoundTrips) { test::check_saved_files_round_trip("conv_lstm_model"); }
TEST(ConvLSTM, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("conv_lstm_model"); }

TEST(ConvLSTM, KerasModelTrainsItsNextEpochAsKeras) {
  const Json record = test::read_record("conv_lstm_model");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "conv_lstm_model.keras");
  const test::KerasModelCase c = test::load_keras_model_case("conv_lstm_model");
  const Array y = Array::from_floats(record["y"].get<std::vector<float>>(), config::shape(record["y_shape"], "y_shape"));
  const History h = model->fit(c.inputs, {y}, {.epochs = 1, .batch_size = 2, .verbose = 0, .shuffle = false});
  EXPECT_NEAR(h.history.at("loss")[0], record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(ConvLSTM, LayoutsAndDefaultsAreKeras) {
  clear_session();
  auto layer = std::make_shared<ConvLSTM2D>(4, IntTuple({3, 2}));
  Sequential model({Input({5, 9, 8, 3}), layer});
  EXPECT_EQ(layer->kernel()->shape(), Shape({3, 2, 3, 16}));
  EXPECT_EQ(layer->recurrent_kernel()->shape(), Shape({3, 2, 4, 16}));
  const auto b = layer->bias()->to_vector();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[std::size_t(i)], i >= 4 && i < 8 ? 1.f : 0.f) << "unit_forget_bias, element " << i;
  EXPECT_EQ(model.outputs()[0].shape(), Shape({-1, 7, 7, 4}));
  const Json c = layer->get_config();
  EXPECT_EQ(c["recurrent_initializer"]["class_name"], "Orthogonal");
  EXPECT_EQ(c["activation"], "tanh");
  EXPECT_EQ(c["recurrent_activation"], "sigmoid");
  EXPECT_EQ(c["kernel_size"], Json({3, 2}));
}

TEST(ConvLSTM, DropoutMasksHoldOverTheStepsAndOnlyWhileTraining) {
  // Gates saturated by the bias (i = o = 1, f = 0) and no recurrent kernel leave h_t = tanh(tanh(z_c)),
  // a function of step t's dropped input alone: identical frames then give identical steps, since the
  // masks are drawn once per sequence; and training differs from inference.
  clear_session();
  const int F = 2;
  auto layer = std::make_shared<ConvLSTM1D>(F, 1, ConvLSTMOptions{.dropout = 0.5f, .return_sequences = true, .seed = 7});
  const Shape shape{2, 3, 6, 2};
  std::vector<float> x;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t)
      for (int i = 0; i < 12; ++i) x.push_back(0.1f * float(i + 1) * (b == 0 ? 1.f : -1.f));
  (void)test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  layer->recurrent_kernel()->assign(std::vector<float>(std::size_t(F * 4 * F), 0.f));
  layer->bias()->assign(std::vector<float>{30.f, 30.f, -30.f, -30.f, 0.f, 0.f, 30.f, 30.f});
  const auto inference = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  const auto training = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x, nullptr, Mode::training);
  EXPECT_NE(inference, training);
  const std::size_t per_step = 6 * F;
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t t = 1; t < 3; ++t)
      for (std::size_t i = 0; i < per_step; ++i)
        EXPECT_EQ(training[(b * 3 + t) * per_step + i], training[b * 3 * per_step + i]) << "sequence " << b << " step " << t << " value " << i;
}

TEST(ConvLSTM, ErrorsNameTheLayerAndTheShape) {
  clear_session();
  test::expect_error_containing([] { Sequential({Input({4, 4, 2}), ConvLSTM2D(2, 2)}); },
                                "expects inputs of rank 5 (batch, steps, height, width, channels)");
  test::expect_error_containing([] { Sequential({Input({3, 2, 4, 2}), ConvLSTM2D(2, 3)}); }, "is smaller than the kernel");
  test::expect_error_containing(
      [] {
        const Tensor frames = Input({3, 6, 6, 1}), h0 = Input({6, 6, 2}), c0 = Input({6, 6, 2});
        ConvLSTM2D(2, 3).apply({frames, h0, c0});
      },
      "initial state 0 must be (batch, 4, 4, 2), got (None, 6, 6, 2)");
  test::expect_error_containing([] { layer_from_config("ConvLSTM2D", Json{{"filters", 2}, {"kernel_size", 3}, {"stateful", true}}); },
                                "ConvLSTM2D: stateful=true is not supported");
  test::expect_error_containing([] { layer_from_config("ConvLSTM2D", Json{{"filters", 2}, {"kernel_size", 3}, {"padding", "full"}}); },
                                "padding");
}

TEST(ConvLSTM, RegularizersFromTheConfigApply) {
  // Keras's kernel/recurrent/bias regularizer keys reach the weights they name.
  clear_session();
  const LayerPtr layer = layer_from_config(
      "ConvLSTM1D", Json{{"filters", 2}, {"kernel_size", 2}, {"kernel_regularizer", "l2"}, {"recurrent_regularizer", "l1"}});
  Sequential model({Input({3, 4, 1}), layer});
  EXPECT_EQ(layer->weight_regularizers().size(), 2u);
  EXPECT_EQ(layer->full_config()["recurrent_regularizer"]["class_name"], "L1");
}

}  // namespace
}  // namespace strata
