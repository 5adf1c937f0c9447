// Optimizer state saved in Keras's files continues training as Keras did: Keras 3's on a learning-rate
// schedule (scripts/fixtures/keras_schedule_state.py: no learning-rate variable), Keras 3's Adafactor with
// its factored moments (scripts/fixtures/keras_adafactor_state.py), tf.keras 2.11+'s
// (scripts/fixtures/tf_keras_adam_state.py: the iteration count and slots as Keras 3 orders them, without
// the learning rate) and the older OptimizerV2 classes' (scripts/fixtures/tf_keras_legacy_optimizers.py:
// slots named by kind and grouped by kind, Keras 2's learning-rate decay), and a mixed-precision model's
// LossScaleOptimizer (scripts/fixtures/keras_mixed_precision.py, tf_keras_mixed_precision.py). Keras continues training from Strata's
// files. Mismatched state is an error that names the value.
#include <gtest/gtest.h>

#include <algorithm>

#include "api/strata.h"
#include "io/hdf5.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasScheduleState : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasScheduleState, ContinuesTrainingAsKeras) {
  const Json record = test::read_record("schedule_state");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "schedule_state" + GetParam());
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  EXPECT_EQ(model->optimizer()->keras_state(model->trainable_weights()).size(), record["optimizer_variables"].size());
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST_P(KerasScheduleState, StrataFileKeepsTheState) {
  const Json record = test::read_record("schedule_state");
  clear_session();
  const std::string path = ::testing::TempDir() + "schedule_state_strata" + GetParam();
  load_model(test::keras_model_fixtures() + "schedule_state.keras")->save(path);
  auto model = load_model(path);
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

// Keras loads Strata's .keras file `path` and, from the state in it (two steps taken), trains the epoch the
// fixture `record_name` recorded to the same weights.
void expect_keras_continues_from(const std::string& path, const std::string& record_name) {
  const std::string script = fmt::format(R"(
import json, warnings, numpy as np, keras
with open("{0}") as f:
    case = json.load(f)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    m = keras.models.load_model("{1}")
# Keras only warns when it skips an optimizer state that does not fit.
assert not [w for w in caught if "Skipping variable loading" in str(w.message)], [str(w.message) for w in caught]
assert int(m.optimizer.iterations) == 2, int(m.optimizer.iterations)
x = np.array(case["inputs"][0]["values"], dtype="float32").reshape(case["inputs"][0]["shape"])
m.fit(x, np.array(case["y"]), batch_size=8, epochs=1, shuffle=False, verbose=0)
for w, e in zip(m.get_weights(), case["trained_weights"]):
    assert np.allclose(np.asarray(w).ravel(), e["values"], atol=2e-5), (w, e["values"])
)", test::keras_model_fixtures() + record_name + ".json", path);
  EXPECT_EQ(test::run_python(test::keras_python(), script), 0);
}

// Keras 3.15 cannot train on from its own .h5 files' optimizer state (it builds the optimizer over no
// variables), so Keras is asked to continue from Strata's .keras file only.
TEST(KerasScheduleStateFile, KerasContinuesTrainingFromStrataFile) {
  if (test::keras_python().empty()) GTEST_SKIP() << "Keras 3 is not installed: not checking that Keras reads Strata's optimizer state";
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "schedule_state.keras");
  const std::string path = ::testing::TempDir() + "schedule_state_strata.keras";
  model->save(path);
  expect_keras_continues_from(path, "schedule_state");
}

// Adafactor keeps per weight a row moment, a column moment (scalar placeholders for a bias) and a velocity.
TEST(KerasAdafactorState, ContinuesTrainingAsKerasFromKerasAndStrataFiles) {
  const Json record = test::read_record("adafactor_state");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "adafactor_state.keras");
  EXPECT_EQ(model->optimizer()->class_name(), "Adafactor");
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  const auto state = model->optimizer()->keras_state(model->trainable_weights());
  const Json& want = record["optimizer_variables"];
  ASSERT_EQ(state.size(), want.size());
  for (std::size_t i = 0; i < state.size(); ++i) EXPECT_EQ(state[i].shape, config::shape(want[i]["shape"], "shape")) << i;
  const std::string path = ::testing::TempDir() + "adafactor_state_strata.keras";
  model->save(path);
  // Strata's .h5 too (Keras's own .h5 writer cannot hold Adafactor's state: it names two values "kernel").
  const std::string h5_path = ::testing::TempDir() + "adafactor_state_strata.h5";
  model->save(h5_path);
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
  for (const std::string& saved : {path, h5_path}) {
    SCOPED_TRACE(saved);
    clear_session();
    auto reloaded = load_model(saved);
    EXPECT_NEAR(test::fit_recorded_epoch(*reloaded, record, 8), record["fit_loss"].get<double>(), 1e-5);
    test::expect_recorded_weights(reloaded->get_weights(), record["trained_weights"]);
  }

  if (test::keras_python().empty()) GTEST_SKIP() << "Keras 3 is not installed: not checking that Keras reads Strata's Adafactor state";
  expect_keras_continues_from(path, "adafactor_state");
}

INSTANTIATE_TEST_SUITE_P(Formats, KerasScheduleState, ::testing::Values(".keras", ".h5"),
                         [](const auto& info) { return info.param.substr(1); });

TEST(TfKeras2OptimizerState, Keras211AdamStateContinuesTraining) {
  const Json record = test::read_record("tf_adam_state");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "tf_adam_state.h5");
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

// A mixed-precision model's file: Keras 3's .keras and .h5 (a LossScaleOptimizer whose variables come
// first), tf.keras 2's .h5 (a LossScaleOptimizerV3 saving the inner optimizer's alone).
class MixedPrecisionState : public ::testing::TestWithParam<std::string> {};

TEST_P(MixedPrecisionState, LossScaleOptimizerStateRestoresTheInnerOptimizer) {
  // Keras trained in float16 with a LossScaleOptimizer; Strata computes in float32 (outputs to float16's
  // precision) and restores the inner Adam's state, passing over the loss scale's variables.
  const std::string file = GetParam();
  const Json record = test::read_record(file.substr(0, file.find('.')));
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + file);
  test::expect_outputs({model->predict(test::read_recorded_array(record["inputs"][0]), {.verbose = 0})},
                       {test::read_recorded_array(record["outputs"][0])}, 5e-3);
  EXPECT_EQ(model->optimizer()->class_name(), "Adam");
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  auto state = model->optimizer()->keras_state(model->trainable_weights());
  const Json& want = record["optimizer_variables"];
  // tf.keras 2.11+ keeps the learning rate out of the optimizer's variables; Keras 3 lists it second.
  if (want.size() + 1 == state.size() && state.size() > 1 && state[1].name == "learning_rate") state.erase(state.begin() + 1);
  ASSERT_EQ(state.size(), want.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    ASSERT_EQ(state[i].values.size(), want[i]["values"].size()) << want[i]["path"];
    for (std::size_t j = 0; j < state[i].values.size(); ++j)
      EXPECT_NEAR(state[i].values[j], want[i]["values"][j].get<double>(), 1e-7) << want[i]["path"] << "[" << j << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Files, MixedPrecisionState,
                         ::testing::Values("mixed_precision.keras", "mixed_precision.h5", "tf_keras_mixed_precision.h5"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

class LegacyOptimizerState : public ::testing::TestWithParam<std::string> {};

TEST_P(LegacyOptimizerState, ContinuesTrainingAsKeras2) {
  const Json records = test::read_record("legacy_optimizers");
  const Json& record = records[GetParam()];
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "legacy_" + GetParam() + ".h5");
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  Json run = record;
  run["inputs"] = records["inputs"];
  run["y"] = records["y"];
  EXPECT_NEAR(test::fit_recorded_epoch(*model, run, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, LegacyOptimizerState, ::testing::Values("adam", "rmsprop", "sgd", "adagrad", "adamax", "adadelta"));

TEST(TfKeras2OptimizerState, LegacyDecayIsAnInverseTimeSchedule) {
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "legacy_sgd.h5");
  // SGD(0.05, decay=0.05) after 2 steps: 0.05 / (1 + 0.05 * 2).
  EXPECT_NEAR(model->optimizer()->learning_rate(), 0.05 / 1.1, 1e-8);
  EXPECT_EQ(model->optimizer()->get_config()["learning_rate"]["class_name"], "InverseTimeDecay");
}

TEST(TfKeras2OptimizerState, LegacyNadamKeepsItsMomentumProduct) {
  // Keras 3's Nadam follows another momentum schedule than Keras 2's, so only the restored state is
  // compared: the iteration count, the momentum cache and the slots.
  const Json record = test::read_record("legacy_optimizers")["nadam"];
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "legacy_nadam.h5");
  EXPECT_EQ(model->optimizer()->iterations(), 2);
  // Slots restored before the optimizer is built wait for build(), and are saved as read meanwhile.
  const auto pending = model->optimizer()->keras_state(model->trainable_weights());
  model->optimizer()->build(model->trainable_weights(), get_backend("cpu"));
  const auto state = model->optimizer()->keras_state(model->trainable_weights());
  ASSERT_EQ(pending.size(), state.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(pending[i].name, state[i].name);
    EXPECT_EQ(pending[i].values, state[i].values) << state[i].name;
  }
  ASSERT_EQ(state.size(), 2 + 2 * model->trainable_weights().size() + 1);
  EXPECT_EQ(state.back().name, "u_product");
  EXPECT_NEAR(state.back().values.at(0), record["momentum_cache"].get<double>(), 1e-7);
  for (const auto& value : state) {
    if (value.name == "iteration" || value.name == "learning_rate" || value.name == "u_product") continue;
    const bool nonzero = std::any_of(value.values.begin(), value.values.end(), [](float v) { return v != 0.f; });
    EXPECT_TRUE(nonzero) << value.name << " was not restored";
  }
}

// The state of a legacy file as the loader reads it: each value with its name.
std::vector<Optimizer::StateValue> legacy_state(const std::string& path) {
  const io::h5::File file = io::h5::File::open(path);
  const io::h5::Group g = file.group("optimizer_weights");
  std::vector<Optimizer::StateValue> state;
  for (const auto& name : g.string_list_attribute("weight_names")) {
    io::h5::FloatArray value = g.read_floats(name);
    state.push_back({name, value.shape, value.values});
  }
  return state;
}

TEST(TfKeras2OptimizerState, MismatchedStateIsAnErrorNamingTheValue) {
  const std::string path = test::keras_model_fixtures() + "legacy_rmsprop.h5";
  clear_session();
  auto model = load_model(path);
  Optimizer& optimizer = *model->optimizer();
  const auto weights = model->trainable_weights();
  auto state = legacy_state(path);
  ASSERT_EQ(state.size(), 1 + 3 * weights.size());
  EXPECT_NO_THROW(optimizer.set_keras2_state(weights, state));

  auto renamed = state;
  renamed.back().name = "RMSprop/dense_3/bias/accumulator:0";
  test::expect_error_containing([&] { optimizer.set_keras2_state(weights, renamed); },
                                "value 12 ('RMSprop/dense_3/bias/accumulator:0') is not a slot of a tf.keras 2 RMSprop configured as this one (slots: rms, momentum, mg)");
  auto dropped = state;
  dropped.pop_back();
  test::expect_error_containing([&] { optimizer.set_keras2_state(weights, dropped); }, "3 values of slot 'mg', but the model has 4 trainable weights");
  auto reshaped = state;
  reshaped[1].shape = Shape{2, 2};
  test::expect_error_containing([&] { optimizer.set_keras2_state(weights, reshaped); }, "has shape (2, 2) but weight");
  auto no_count = std::vector<Optimizer::StateValue>(state.begin() + 1, state.end());
  test::expect_error_containing([&] { optimizer.set_keras2_state(weights, no_count); }, "no iteration count");
  // A failed restore leaves the state as it was.
  EXPECT_EQ(optimizer.iterations(), 2);
}

}  // namespace
}  // namespace strata
