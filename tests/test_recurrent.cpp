// SimpleRNN, LSTM and GRU: Keras 3's outputs for its own configs and weights
// (scripts/fixtures/keras_sequence_layers.py), and an LSTM and a GRU against loops in double written from
// Keras's equations (gate order i, f, c, o; z, r, h with the reset gate after the recurrent product).
#include <gtest/gtest.h>

#include <cmath>

#include "keras_layer_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasSequenceReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasSequenceReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_sequence_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasSequenceReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_sequence_layers.json")["cases"].size())));

double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

TEST(Recurrent, LstmAndGruMatchLoops) {
  const int n = 2, steps = 4, in = 3, u = 2;
  const Shape shape{n, steps, in};
  const auto x = test::random_vector(std::size_t(n * steps * in), -1, 1, 31);
  for (bool lstm : {true, false}) {
    SCOPED_TRACE(lstm ? "LSTM" : "GRU");
    clear_session();
    const int g = lstm ? 4 : 3;
    LayerPtr layer = lstm ? LayerPtr(std::make_shared<LSTM>(u, RecurrentOptions{.return_sequences = true}))
                          : LayerPtr(std::make_shared<GRU>(u, RecurrentOptions{.return_sequences = true}));
    (void)test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
    const auto k = test::random_vector(std::size_t(in * g * u), -1, 1, 32), rk = test::random_vector(std::size_t(u * g * u), -1, 1, 33);
    const auto b = test::random_vector(std::size_t((lstm ? 1 : 2) * g * u), -1, 1, 34);
    layer->weights()[0]->assign(k);
    layer->weights()[1]->assign(rk);
    layer->weights()[2]->assign(b);
    std::vector<double> expected;
    for (int s = 0; s < n; ++s) {
      std::vector<double> h(u, 0.0), c(u, 0.0);
      std::vector<std::vector<double>> outs;
      for (int t = 0; t < steps; ++t) {
        // xp = x_t K + b (input bias), hp = h R (+ recurrent bias for the GRU).
        std::vector<double> xp(std::size_t(g * u)), hp(std::size_t(g * u));
        for (int j = 0; j < g * u; ++j) {
          xp[std::size_t(j)] = b[std::size_t(j)];
          hp[std::size_t(j)] = lstm ? 0.0 : b[std::size_t(g * u + j)];
          for (int i = 0; i < in; ++i) xp[std::size_t(j)] += double(x[std::size_t((s * steps + t) * in + i)]) * k[std::size_t(i * g * u + j)];
          for (int i = 0; i < u; ++i) hp[std::size_t(j)] += h[std::size_t(i)] * rk[std::size_t(i * g * u + j)];
        }
        std::vector<double> next(u);
        for (int j = 0; j < u; ++j) {
          auto at = [&](const std::vector<double>& v, int gate) { return v[std::size_t(gate * u + j)]; };
          if (lstm) {
            const double i_ = sigmoid(at(xp, 0) + at(hp, 0)), f = sigmoid(at(xp, 1) + at(hp, 1));
            const double cc = std::tanh(at(xp, 2) + at(hp, 2)), o = sigmoid(at(xp, 3) + at(hp, 3));
            c[std::size_t(j)] = f * c[std::size_t(j)] + i_ * cc;
            next[std::size_t(j)] = o * std::tanh(c[std::size_t(j)]);
          } else {
            const double z = sigmoid(at(xp, 0) + at(hp, 0)), r = sigmoid(at(xp, 1) + at(hp, 1));
            const double hh = std::tanh(at(xp, 2) + r * at(hp, 2));
            next[std::size_t(j)] = z * h[std::size_t(j)] + (1 - z) * hh;
          }
        }
        h = next;
        outs.push_back(h);
      }
      for (const auto& o : outs) expected.insert(expected.end(), o.begin(), o.end());
    }
    Shape out;
    const auto y = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out);
    ASSERT_EQ(out, (Shape{n, steps, u}));
    test::expect_near_all(y, expected, 1e-5, "sequence output");
  }
}

TEST(Recurrent, DefaultsAndLayoutsAreKeras) {
  clear_session();
  auto lstm = std::make_shared<LSTM>(3);
  (void)test::run([&](const Tensor& t) { return lstm->trace(t); }, {2, 5, 4}, test::random_vector(40, -1, 1, 35));
  EXPECT_EQ(lstm->kernel()->shape(), (Shape{4, 12}));
  EXPECT_EQ(lstm->recurrent_kernel()->shape(), (Shape{3, 12}));
  const auto bias = lstm->bias()->to_vector();
  EXPECT_EQ(bias, (std::vector<float>{0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0})) << "unit_forget_bias";
  // Orthogonal recurrent kernel: its rows are orthonormal (3 rows of 12).
  const auto r = lstm->recurrent_kernel()->to_vector();
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      double dot = 0;
      for (int j = 0; j < 12; ++j) dot += double(r[std::size_t(a * 12 + j)]) * r[std::size_t(b * 12 + j)];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-5);
    }
  auto gru = std::make_shared<GRU>(2);
  (void)test::run([&](const Tensor& t) { return gru->trace(t); }, {2, 5, 4}, test::random_vector(40, -1, 1, 36));
  EXPECT_EQ(gru->bias()->shape(), (Shape{2, 6})) << "reset_after: input and recurrent biases";
  auto gru_before = std::make_shared<GRU>(2, RecurrentOptions{.reset_after = false});
  (void)test::run([&](const Tensor& t) { return gru_before->trace(t); }, {2, 5, 4}, test::random_vector(40, -1, 1, 36));
  EXPECT_EQ(gru_before->bias()->shape(), (Shape{6}));
}

}  // namespace
}  // namespace strata
