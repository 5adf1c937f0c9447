// Functional models with masks, recurrent states and several outputs: Keras's files load and predict as
// Keras did; Strata's saved files round-trip and load into Keras; masked steps are skipped as Keras's RNN
// skips them (checked against a loop written here).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/strata.h"
#include "graph/ops.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasSequenceModels : public ::testing::TestWithParam<const char*> {};

TEST_P(KerasSequenceModels, PredictAsKerasDid) { test::check_predicts_as_keras_did(GetParam()); }
TEST_P(KerasSequenceModels, SavedFilesRoundTrip) { test::check_saved_files_round_trip(GetParam()); }
TEST_P(KerasSequenceModels, KerasLoadsStrataFiles) { test::check_keras_loads_strata_file(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Fixtures, KerasSequenceModels,
                         ::testing::Values("seq_embedding_mask", "seq_states", "seq_bidirectional", "seq_attention", "seq_nested",
                                           "seq_cell_wrappers"));

TEST(RnnWrapper, ConfigsAsKerasAndErrors) {
  // RNN(LSTMCell(3)) is an LSTM read and written as Keras's wrapper: the cell's keys under "cell".
  const Json config = {{"name", "wrapped"}, {"return_sequences", true},
                       {"cell", {{"class_name", "LSTMCell"}, {"config", {{"name", "lstm_cell"}, {"units", 3}, {"unit_forget_bias", false}}}}}};
  const LayerPtr layer = layer_from_config("RNN", config);
  const auto* rnn = dynamic_cast<const RNN*>(layer.get());
  ASSERT_NE(rnn, nullptr);
  EXPECT_EQ(rnn->kind(), RecurrentKind::lstm);
  EXPECT_EQ(rnn->units(), 3);
  EXPECT_TRUE(rnn->options().return_sequences);
  EXPECT_FALSE(rnn->options().unit_forget_bias);
  const Json written = layer->get_config();
  EXPECT_EQ(written["name"], "wrapped");
  EXPECT_EQ(written["cell"]["class_name"], "LSTMCell");
  EXPECT_EQ(written["cell"]["config"]["units"], 3);
  EXPECT_FALSE(written["cell"]["config"].contains("return_sequences"));
  EXPECT_EQ(layer_from_config("RNN", written)->get_config(), written);
  test::expect_error_containing([] { layer_from_config("RNN", {{"cell", Json::array()}}); }, "a list of cells");
  test::expect_error_containing([] { layer_from_config("RNN", {{"cell", {{"class_name", "StackedRNNCells"}, {"config", Json::object()}}}}); },
                                "cell 'StackedRNNCells' is not one of Keras's SimpleRNNCell, LSTMCell and GRUCell");
  test::expect_error_containing(
      [] { layer_from_config("RNN", {{"cell", {{"class_name", "GRUCell"}, {"config", {{"units", 2}, {"kernel_regularizer", "l2"}}}}}}); },
      "the cell's kernel_regularizer is not supported");
}

// SimpleRNN (tanh) over a masked batch, written out: a masked step keeps h and repeats the previous
// output, h, so masked leading steps output the initial state (as Keras 3.15.1's eager
// rnn(x, initial_state=h0, mask=m) does).
TEST(Masking, SimpleRnnSkipsMaskedStepsAsKeras) {
  clear_session();
  set_random_seed(3);
  const std::int64_t batch = 3, steps = 5, features = 2, units = 3;
  const Tensor x = Input({steps, features});
  const Tensor h0 = Input({units});
  auto rnn = std::make_shared<SimpleRNN>(units, RecurrentOptions{.return_sequences = true, .return_state = true});
  const std::vector<Tensor> out = rnn->apply({Masking()(x), h0});
  Model model({x, h0}, {out[0], out[1]});
  std::vector<float> xv = test::random_vector(std::size_t(batch * steps * features), -1, 1, 4);
  const std::vector<float> hv = test::random_vector(std::size_t(batch * units), -1, 1, 5);
  // Row 0: the first two steps masked; row 1: the last; row 2: every step.
  auto zero_step = [&](std::int64_t b, std::int64_t t) {
    for (std::int64_t f = 0; f < features; ++f) xv[std::size_t((b * steps + t) * features + f)] = 0.f;
  };
  zero_step(0, 0), zero_step(0, 1), zero_step(1, 4);
  for (std::int64_t t = 0; t < steps; ++t) zero_step(2, t);
  const auto got = model.predict({Array::from_floats(xv, {batch, steps, features}), Array::from_floats(hv, {batch, units})}, {.verbose = 0});

  const auto k = rnn->kernel()->to_vector(), r = rnn->recurrent_kernel()->to_vector(), bias = rnn->bias()->to_vector();
  const auto seq = got[0].to_floats(), last = got[1].to_floats();
  for (std::int64_t b = 0; b < batch; ++b) {
    std::vector<double> h(hv.begin() + b * units, hv.begin() + (b + 1) * units);
    for (std::int64_t t = 0; t < steps; ++t) {
      bool valid = false;
      for (std::int64_t f = 0; f < features; ++f) valid = valid || xv[std::size_t((b * steps + t) * features + f)] != 0.f;
      if (valid) {
        std::vector<double> next(static_cast<std::size_t>(units));
        for (std::int64_t j = 0; j < units; ++j) {
          double z = bias[std::size_t(j)];
          for (std::int64_t f = 0; f < features; ++f) z += xv[std::size_t((b * steps + t) * features + f)] * k[std::size_t(f * units + j)];
          for (std::int64_t i = 0; i < units; ++i) z += h[std::size_t(i)] * r[std::size_t(i * units + j)];
          next[std::size_t(j)] = std::tanh(z);
        }
        h = next;
      }
      for (std::int64_t j = 0; j < units; ++j)
        EXPECT_NEAR(seq[std::size_t((b * steps + t) * units + j)], h[std::size_t(j)], 1e-5) << b << " " << t << " " << j;
    }
    for (std::int64_t j = 0; j < units; ++j) EXPECT_NEAR(last[std::size_t(b * units + j)], h[std::size_t(j)], 1e-5);
  }
  // Row 2 is masked throughout: its initial state comes back as is.
  EXPECT_EQ(last[std::size_t(2 * units)], hv[std::size_t(2 * units)]);
}

TEST(Masking, LayersPassOrDropTheMask) {
  clear_session();
  const Tensor tokens = Input({6});
  const Tensor e = Embedding(5, 3, {.mask_zero = true})(tokens);
  EXPECT_TRUE(get_keras_mask(e).valid());
  EXPECT_TRUE(get_keras_mask(Dense(2)(e)).valid());                       // Dense supports masking
  EXPECT_TRUE(get_keras_mask(LSTM(2, {.return_sequences = true})(e)).valid());
  EXPECT_FALSE(get_keras_mask(LSTM(2)(e)).valid());                       // the last output has none
  EXPECT_FALSE(get_keras_mask(Flatten()(e)).valid());                     // Flatten drops it, as in Keras
  EXPECT_FALSE(get_keras_mask(GlobalAveragePooling1D()(e)).valid());
  EXPECT_FALSE(get_keras_mask(Embedding(5, 3)(tokens)).valid());
}

// A model used as a layer: one set of weights however often it is called, trained through the outer
// model, and listed in the outer summary as one layer.
TEST(NestedModels, SharedWeightsTrainThroughTheOuterModel) {
  clear_session();
  set_random_seed(12);
  Sequential inner({Input({4}), Dense(3, {.activation = "tanh", .name = "d1"}), Dense(2, {.name = "d2"})}, "inner");
  const Tensor x = Input({4});
  const Tensor pre = Dense(4, {.name = "pre"})(x);
  const Tensor y = Add()({inner(pre), inner(x)});
  Model outer(x, y, "outer");
  EXPECT_EQ(outer.layers().size(), 4u);  // input, pre, inner, add
  EXPECT_EQ(outer.count_params(), 20 + 23);
  const std::string summary = outer.summary_string(100);
  EXPECT_NE(summary.find("inner (Sequential)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("inner[0][0]"), std::string::npos) << summary;
  EXPECT_NE(summary.find("inner[1][0]"), std::string::npos) << summary;

  const Array data = Array::from_floats(test::random_vector(64 * 4, -1, 1, 13), {64, 4});
  const Array target = Array::from_floats(test::random_vector(64 * 2, -1, 1, 14), {64, 2});
  const auto before = inner.get_weights()[0].to_floats();
  outer.compile("adam", "mse");
  const auto history = outer.fit(data, target, {.epochs = 5, .batch_size = 16, .verbose = 0});
  EXPECT_LT(history.history.at("loss").back(), history.history.at("loss").front());
  EXPECT_NE(inner.get_weights()[0].to_floats(), before);  // the inner model's own weights trained
  // The outer output is the inner model (alone, with the trained weights) applied twice and summed.
  Model pre_model(x, pre);
  const auto direct = inner.predict(data, {.verbose = 0}).to_floats();
  const auto through = inner.predict(pre_model.predict(data, {.verbose = 0}), {.verbose = 0}).to_floats();
  const auto got = outer.predict(data, {.verbose = 0}).to_floats();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], direct[i] + through[i], 1e-5);
}

TEST(Recurrent, StatesAndErrors) {
  clear_session();
  const Tensor x = Input({4, 3});
  LSTM lstm(2, {.return_state = true});
  const auto out = lstm.apply({x});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].shape(), (Shape{-1, 2}));
  EXPECT_EQ(out[2].shape(), (Shape{-1, 2}));
  auto error_of = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of([&] { LSTM(2, {.return_state = true})(x); }).find("returns 3 tensors; call apply()"), std::string::npos);
  // Keras's summary lists every output shape of such a layer.
  const std::string summary = Model(x, {out[0], out[1]}).summary_string(100);
  EXPECT_NE(summary.find("[(None, 2), (None, 2),"), std::string::npos) << summary;
  const Tensor h = Input({2});
  EXPECT_NE(error_of([&] { LSTM(2).apply({x, h}); }).find("takes 2 initial state(s), got 1"), std::string::npos);
  EXPECT_NE(error_of([&] { GRU(2).apply({x, Input({3})}); }).find("initial state 0 must be (batch, 2), got (None, 3)"), std::string::npos);
  EXPECT_NE(error_of([&] { GRU(2).apply({x}, {{"foo", 1}}); }).find("takes no call argument 'foo'"), std::string::npos);
}

}  // namespace
}  // namespace strata
