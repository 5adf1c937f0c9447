// Training runs recorded from Keras 3 (scripts/fixtures/keras_training.py): the same initial weights,
// data, optimizer, loss and metrics must give the same history, weights and evaluation here.
#include <gtest/gtest.h>

#include <fstream>

#include "api/strata.h"

namespace strata {
namespace {

Json load_fixture() {
  std::ifstream in(std::string(STRATA_FIXTURES_DIR) + "/keras_training.json");
  if (!in) throw std::runtime_error("cannot open tests/fixtures/keras_training.json");
  return Json::parse(in);
}

Array to_array(const Json& rows, bool integers) {
  std::vector<float> values;
  Shape shape{std::int64_t(rows.size())};
  if (rows[0].is_array()) {
    shape.push_back(std::int64_t(rows[0].size()));
    for (const Json& r : rows)
      for (const Json& v : r) values.push_back(v.get<float>());
  } else {
    for (const Json& v : rows) values.push_back(v.get<float>());
  }
  if (!integers) return Array::from_floats(values, shape);
  std::vector<std::int32_t> ints(values.begin(), values.end());
  return Array::from_ints(ints, shape);
}

class KerasReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasReference, SameHistoryWeightsAndEvaluation) {
  static const Json fixture = load_fixture();
  const Json& c = fixture["cases"][std::size_t(GetParam())];
  SCOPED_TRACE(c["name"].get<std::string>());
  clear_session();
  Sequential model({Input({5}), Dense(4, {.activation = "tanh"}), Dense(3, {.activation = c["output_activation"].get<std::string>()})});
  std::vector<Array> initial;
  for (const Json& w : fixture["initial_weights"]) initial.push_back(to_array(w, false));
  model.set_weights(initial);

  std::vector<MetricRef> metrics;
  for (const Json& m : c["metrics"]) metrics.emplace_back(m.get<std::string>());
  model.compile(get_optimizer(c["optimizer"]), get_loss(c["loss"]), metrics);
  const bool sparse = get_loss(c["loss"])->sparse_labels();
  const std::string loss_name = c["loss"].is_string() ? c["loss"].get<std::string>() : c["loss"]["class_name"].get<std::string>();
  Array y;
  if (sparse) y = to_array(fixture["labels"], true);
  else if (loss_name == "CategoricalCrossentropy") {
    std::vector<float> onehot;
    for (const Json& l : fixture["labels"])
      for (int k = 0; k < 3; ++k) onehot.push_back(l.get<int>() == k ? 1.f : 0.f);
    y = Array::from_floats(onehot, {std::int64_t(fixture["labels"].size()), 3});
  } else {
    y = to_array(fixture["targets"], false);
  }
  const Array x = to_array(fixture["x"], false);

  FitOptions fit_options{.epochs = 3, .batch_size = 5, .verbose = 0, .shuffle = false};
  if (c.contains("swap_ema_weights")) {  // validation on the training data, with the moving averages swapped in
    fit_options.validation_data = ValidationData{{x}, {y}};
    fit_options.callbacks.push_back(std::make_shared<SwapEMAWeights>(c["swap_ema_weights"]["swap_on_epoch"].get<bool>()));
  }
  const History h = model.fit(x, y, fit_options);
  EXPECT_EQ(h.history.size(), c["history"].size());
  for (const auto& [key, values] : c["history"].items()) {
    ASSERT_TRUE(h.history.count(key)) << key;
    for (std::size_t e = 0; e < values.size(); ++e)
      EXPECT_NEAR(h.history.at(key)[e], values[e].get<double>(), 2e-5 * (1 + std::abs(values[e].get<double>()))) << key << " epoch " << e;
  }
  const auto weights = model.get_weights();
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const Array want = to_array(c["final_weights"][i], false);
    const auto got = weights[i].to_floats(), expected = want.to_floats();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t j = 0; j < got.size(); ++j) EXPECT_NEAR(got[j], expected[j], 2e-5 * (1 + std::abs(expected[j]))) << "weight " << i << "[" << j << "]";
  }
  if (c.contains("optimizer_variables")) {
    // The state as Keras lists optimizer.variables: the same values in the same order, each name ending as
    // Keras's (the weight paths differ: Keras numbers its layers per process).
    const auto state = model.optimizer()->keras_state(model.trainable_weights());
    const Json& want = c["optimizer_variables"];
    ASSERT_EQ(state.size(), want.size());
    for (std::size_t i = 0; i < state.size(); ++i) {
      const std::string path = want[i]["path"].get<std::string>();
      const std::string name = path.substr(path.find('/') + 1);  // after the optimizer's own name
      const std::string slot = name.substr(name.find_last_of('_') + 1);
      // Keras names Adafactor's factored moments after the weight alone ("adafactor/kernel", "bias").
      if (name.find('_') != std::string::npos) EXPECT_TRUE(state[i].name.ends_with(slot)) << state[i].name << " vs " << path;
      ASSERT_EQ(state[i].values.size(), want[i]["values"].size()) << path;
      for (std::size_t j = 0; j < state[i].values.size(); ++j) {
        const double expected = want[i]["values"][j].get<double>();
        EXPECT_NEAR(state[i].values[j], expected, 2e-5 * (1 + std::abs(expected))) << path << "[" << j << "]";
      }
    }
  }
  const Logs evaluation = model.evaluate(x, y, {.batch_size = 7, .verbose = 0});
  for (const auto& [key, value] : c["evaluate"].items()) {
    ASSERT_TRUE(evaluation.count(key)) << key;
    EXPECT_NEAR(evaluation.at(key), value.get<double>(), 2e-5 * (1 + std::abs(value.get<double>()))) << key;
  }
}

TEST(KerasReference, EveryRecordedCaseRuns) { EXPECT_EQ(load_fixture()["cases"].size(), 16u); }

INSTANTIATE_TEST_SUITE_P(Cases, KerasReference, ::testing::Range(0, 16), [](const auto& info) {
  static const Json fixture = load_fixture();
  return fixture["cases"][std::size_t(info.param)]["name"].get<std::string>();
});

}  // namespace
}  // namespace strata
