// GroupQueryAttention and MultiHeadAttention's gate and sliding window: a loop reference in double,
// Keras-saved models (scripts/fixtures/keras_grouped_attention.py) that predict as Keras did, round-trip,
// load into Keras and train their next epoch as Keras; unknown lengths as their fixed-length twins; errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "api/strata.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

// The layer written out with loops: query heads h read key/value head h / (Hq / Hkv); causal and window
// masks on (t, s); the gate sigmoid(x Wg + bg) on each head's output.
std::vector<double> grouped_attention_reference(const std::vector<float>& query, const std::vector<float>& value, std::int64_t batch,
                                                std::int64_t steps_q, std::int64_t steps_v, std::int64_t features, std::int64_t dim,
                                                std::int64_t query_heads, std::int64_t kv_heads, bool causal, int window,
                                                const std::vector<std::vector<float>>& w) {
  // w: query kernel (f, Hq, dim), bias (Hq, dim); key; gate (f, Hq, dim), bias; value; output kernel (Hq, dim, out), bias.
  const auto &wq = w[0], &bq = w[1], &wk = w[2], &bk = w[3], &wg = w[4], &bg = w[5], &wv = w[6], &bv = w[7], &wo = w[8], &bo = w[9];
  const std::int64_t out = std::int64_t(bo.size()), group = query_heads / kv_heads;
  auto project = [&](const std::vector<float>& x, std::int64_t b, std::int64_t t, std::int64_t steps, const std::vector<float>& k,
                     const std::vector<float>& bias, std::int64_t heads, std::int64_t h, std::int64_t d) {
    double sum = bias[std::size_t(h * dim + d)];
    for (std::int64_t f = 0; f < features; ++f)
      sum += double(x[std::size_t((b * steps + t) * features + f)]) * k[std::size_t((f * heads + h) * dim + d)];
    return sum;
  };
  std::vector<double> y(std::size_t(batch * steps_q * out));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t t = 0; t < steps_q; ++t) {
      std::vector<double> heads(std::size_t(query_heads * dim));
      for (std::int64_t h = 0; h < query_heads; ++h) {
        const std::int64_t g = h / group;
        std::vector<double> scores(static_cast<std::size_t>(steps_v));
        double top = -1e300;
        for (std::int64_t s = 0; s < steps_v; ++s) {
          double dot = 0;
          for (std::int64_t d = 0; d < dim; ++d)
            dot += project(query, b, t, steps_q, wq, bq, query_heads, h, d) / std::sqrt(double(dim)) * project(value, b, s, steps_v, wk, bk, kv_heads, g, d);
          const bool hidden = (causal && s > t) || (window > 0 && std::abs(t - s) >= window);
          scores[std::size_t(s)] = hidden ? -1e9 : dot;
          top = std::max(top, scores[std::size_t(s)]);
        }
        double total = 0;
        for (double& e : scores) total += (e = std::exp(e - top));
        for (std::int64_t d = 0; d < dim; ++d) {
          double o = 0;
          for (std::int64_t s = 0; s < steps_v; ++s) o += scores[std::size_t(s)] / total * project(value, b, s, steps_v, wv, bv, kv_heads, g, d);
          const double gate = 1.0 / (1.0 + std::exp(-project(query, b, t, steps_q, wg, bg, query_heads, h, d)));
          heads[std::size_t(h * dim + d)] = o * gate;
        }
      }
      for (std::int64_t o = 0; o < out; ++o) {
        double sum = bo[std::size_t(o)];
        for (std::int64_t i = 0; i < query_heads * dim; ++i) sum += heads[std::size_t(i)] * wo[std::size_t(i * out + o)];
        y[std::size_t((b * steps_q + t) * out + o)] = sum;
      }
    }
  return y;
}

TEST(GroupQueryAttention, MatchesLoopReference) {
  const std::int64_t batch = 2, steps_q = 5, steps_v = 6, features = 3, dim = 2;
  for (const auto& [query_heads, kv_heads, causal, window] :
       std::vector<std::tuple<int, int, bool, int>>{{4, 2, false, 0}, {4, 1, true, 0}, {3, 3, false, 2}, {6, 2, true, 3}}) {
    SCOPED_TRACE(::testing::Message() << query_heads << " query heads, " << kv_heads << " key/value heads, causal " << causal << ", window " << window);
    clear_session();
    set_random_seed(7);
    const Tensor query = Input({steps_q, features}), value = Input({steps_v, features});
    auto layer = std::make_shared<GroupQueryAttention>(dim, query_heads, kv_heads, MultiHeadAttentionOptions{.sliding_window = window, .use_gate = true});
    Model model({query, value}, layer->apply({query, value}, {{"use_causal_mask", causal}})[0]);
    std::vector<std::vector<float>> w;
    std::uint32_t seed = 20;
    for (const VariablePtr& v : layer->weights()) {  // random biases too
      w.push_back(test::random_vector(std::size_t(v->shape().numel()), -0.8f, 0.8f, seed++));
      v->assign(w.back());
    }
    ASSERT_EQ(w.size(), 10u);
    EXPECT_EQ(layer->weights()[4]->name(), layer->name() + "/gate/kernel");
    const auto xq = test::random_vector(std::size_t(batch * steps_q * features), -1, 1, 1);
    const auto xv = test::random_vector(std::size_t(batch * steps_v * features), -1, 1, 2);
    const auto got = model.predict({Array::from_floats(xq, {batch, steps_q, features}), Array::from_floats(xv, {batch, steps_v, features})},
                                   {.verbose = 0});
    test::expect_close(got[0].to_floats(),
                       grouped_attention_reference(xq, xv, batch, steps_q, steps_v, features, dim, query_heads, kv_heads, causal, window, w),
                       1e-5, 1e-5, "output");
  }
}

class KerasGroupedAttention : public ::testing::TestWithParam<const char*> {};

TEST_P(KerasGroupedAttention, PredictAsKerasDid) { test::check_predicts_as_keras_did(GetParam()); }
TEST_P(KerasGroupedAttention, SavedFilesRoundTrip) { test::check_saved_files_round_trip(GetParam()); }
TEST_P(KerasGroupedAttention, KerasLoadsStrataFiles) { test::check_keras_loads_strata_file(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Fixtures, KerasGroupedAttention, ::testing::Values("attn_grouped", "attn_grouped_classifier"));

TEST(GroupQueryAttention, KerasSavedClassifierTrainsAsKeras) {
  clear_session();
  const std::string name = "attn_grouped_classifier";
  const Json record = test::read_record(name);
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 2e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(GroupQueryAttention, UnknownLengthsAsTheirFixedLengthTwins) {
  // The causal and sliding-window masks need the lengths: over unknown ones the layer waits for the data's.
  clear_session();
  set_random_seed(9);
  auto build = [](std::int64_t steps) {
    const Tensor x = Input({steps, 4});
    Tensor h = GroupQueryAttention(3, 4, 2, {.sliding_window = 2}).apply({x, x}, {{"use_causal_mask", true}})[0];
    h = MultiHeadAttention(2, 3, {.use_gate = true}).apply({h, h})[0];
    auto model = std::make_unique<Model>(x, Dense(2)(GlobalAveragePooling1D()(h)));
    model->compile(Adam({.learning_rate = 0.01}), "mse");
    return model;
  };
  auto any = build(-1), fixed = build(6);
  fixed->set_weights(any->get_weights());
  const Array x = Array::from_floats(test::random_vector(5 * 6 * 4, -1, 1, 3), {5, 6, 4});
  const Array y = Array::from_floats(test::random_vector(5 * 2, -1, 1, 4), {5, 2});
  test::expect_outputs({any->predict(x, {.verbose = 0})}, {fixed->predict(x, {.verbose = 0})}, 1e-6);
  const FitOptions epoch{.epochs = 1, .batch_size = 2, .verbose = 0, .shuffle = false};
  EXPECT_NEAR(any->fit({x}, {y}, epoch).history.at("loss")[0], fixed->fit({x}, {y}, epoch).history.at("loss")[0], 1e-6);
  test::expect_outputs(any->get_weights(), fixed->get_weights(), 1e-6);
  const Array longer = Array::from_floats(test::random_vector(2 * 9 * 4, -1, 1, 5), {2, 9, 4});
  EXPECT_EQ(any->predict(longer, {.verbose = 0}).shape(), Shape({2, 2}));
}

TEST(GroupQueryAttention, ConfigsAndErrors) {
  const LayerPtr layer = layer_from_config("GroupQueryAttention", {{"name", "g"}, {"head_dim", 4}, {"num_query_heads", 6}, {"num_key_value_heads", 2},
                                                                   {"use_gate", true}, {"sliding_window", 3}, {"flash_attention", nullptr}});
  const Json c = layer->get_config();
  EXPECT_EQ(c["head_dim"], 4);
  EXPECT_EQ(c["num_query_heads"], 6);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["use_gate"], true);
  EXPECT_EQ(c["sliding_window"], 3);
  EXPECT_FALSE(c.contains("key_dim"));
  EXPECT_EQ(layer_from_config("GroupQueryAttention", c)->get_config(), c);
  const Json mha = layer_from_config("MultiHeadAttention", {{"num_heads", 2}, {"key_dim", 3}, {"use_gate", true}, {"sliding_window", 4}})->get_config();
  EXPECT_EQ(mha["use_gate"], true);
  EXPECT_EQ(mha["sliding_window"], 4);
  EXPECT_EQ(mha["value_dim"], 3);
  test::expect_error_containing([] { GroupQueryAttention(4, 6, 4); }, "num_query_heads (6) must be a multiple of num_key_value_heads (4)");
  test::expect_error_containing([] { GroupQueryAttention(0, 2, 2); }, "must be positive");
  test::expect_error_containing(
      [] { layer_from_config("GroupQueryAttention", {{"head_dim", 4}, {"num_query_heads", 2}, {"num_key_value_heads", 2}, {"sliding_window", 0}}); },
      "GroupQueryAttention: sliding_window must be null or a positive integer, got 0");
  test::expect_error_containing([] { layer_from_config("GroupQueryAttention", {{"head_dim", 4}, {"num_query_heads", 2}}); },
                                "GroupQueryAttention: 'num_key_value_heads' must be an integer");
  test::expect_error_containing([] { layer_from_config("MultiHeadAttention", {{"num_heads", 2}, {"key_dim", 3}, {"sliding_window", "3"}}); },
                                "MultiHeadAttention: sliding_window must be null or a positive integer, got \"3\"");
}

}  // namespace
}  // namespace strata
