// Checks of a whole model saved by Keras (scripts/fixtures/keras_*.py -> tests/fixtures/keras/NAME.keras,
// NAME.weights.h5 and NAME.json with sample inputs and Keras's outputs): it predicts as Keras did, from the
// .keras file and from the .weights.h5 file; Strata's saved files round-trip; Keras loads Strata's file.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "api/strata.h"
#include "python_tools.h"

namespace strata::test {

inline const std::string& keras_model_fixtures() {
  static const std::string dir = std::string(STRATA_FIXTURES_DIR) + "/keras/";
  return dir;
}

// An array as the fixture scripts record it: {"shape": [...], "values": [...]}.
inline Array read_recorded_array(const Json& e) {
  return Array::from_floats(e["values"].get<std::vector<float>>(), config::shape(e["shape"], "shape"));
}

// Every weight of a model against a record's list of arrays (a fixture's "trained_weights").
inline void expect_recorded_weights(const std::vector<Array>& weights, const Json& want, double tolerance = 2e-5) {
  ASSERT_EQ(weights.size(), want.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const Array expected = read_recorded_array(want[i]);
    ASSERT_EQ(weights[i].shape(), expected.shape()) << "weight " << i;
    const auto g = weights[i].to_floats(), w = expected.to_floats();
    for (std::size_t k = 0; k < g.size(); ++k) ASSERT_NEAR(g[k], w[k], tolerance) << "weight " << i << " element " << k;
  }
}

// One unshuffled epoch on a record's first input and its integer labels "y", as the fixture trained it;
// returns the epoch's loss.
inline double fit_recorded_epoch(Model& model, const Json& record, int batch_size) {
  const auto labels = record["y"].get<std::vector<std::int32_t>>();
  const History h = model.fit(read_recorded_array(record["inputs"][0]), Array::from_ints(labels, {std::int64_t(labels.size())}),
                              {.epochs = 1, .batch_size = batch_size, .verbose = 0, .shuffle = false});
  return h.history.at("loss")[0];
}

inline Json read_record(const std::string& name) {
  std::ifstream in(keras_model_fixtures() + name + ".json");
  return Json::parse(in);
}

struct KerasModelCase {
  std::vector<Array> inputs;
  std::vector<Array> outputs;
};

inline KerasModelCase load_keras_model_case(const std::string& name) {
  const Json j = read_record(name);
  KerasModelCase c;
  for (const Json& e : j["inputs"]) c.inputs.push_back(read_recorded_array(e));
  for (const Json& e : j["outputs"]) c.outputs.push_back(read_recorded_array(e));
  return c;
}

inline void expect_outputs(const std::vector<Array>& got, const std::vector<Array>& want, double tolerance = 2e-5) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << "output " << i;
    const auto g = got[i].to_floats(), w = want[i].to_floats();
    for (std::size_t k = 0; k < g.size(); ++k) ASSERT_NEAR(g[k], w[k], tolerance) << "output " << i << " element " << k;
  }
}

inline void check_predicts_as_keras_did(const std::string& name) {
  clear_session();
  const KerasModelCase c = load_keras_model_case(name);
  auto model = load_model(keras_model_fixtures() + name + ".keras");
  expect_outputs(model->predict(c.inputs, {.verbose = 0}), c.outputs);
  // Keras's .weights.h5 file, into a model rebuilt from the config.
  auto rebuilt = model_from_json(model->to_json());
  rebuilt->load_weights(keras_model_fixtures() + name + ".weights.h5");
  expect_outputs(rebuilt->predict(c.inputs, {.verbose = 0}), c.outputs);
}

inline void check_saved_files_round_trip(const std::string& name) {
  clear_session();
  const KerasModelCase c = load_keras_model_case(name);
  auto model = load_model(keras_model_fixtures() + name + ".keras");
  for (const std::string suffix : {".keras", ".h5"}) {
    SCOPED_TRACE(suffix);
    const std::string path = ::testing::TempDir() + name + suffix;
    model->save(path);
    auto loaded = load_model(path);
    EXPECT_EQ(loaded->to_json(), model->to_json());
    expect_outputs(loaded->predict(c.inputs, {.verbose = 0}), c.outputs);
  }
}

inline void check_keras_loads_strata_file(const std::string& name) {
  const std::string python = keras_python();
  if (python.empty())
    GTEST_SKIP() << "Keras 3 is not installed (set STRATA_KERAS_PYTHON to a Python with Keras 3 and a backend): not checking that Keras loads Strata's files";
  clear_session();
  auto model = load_model(keras_model_fixtures() + name + ".keras");
  const std::string path = ::testing::TempDir() + name + "_strata.keras";
  model->save(path);
  const std::string script = fmt::format(R"(
import json, numpy as np, keras
case = json.load(open("{0}"))
xs = [np.array(e["values"], dtype="float32").reshape(e["shape"]) for e in case["inputs"]]
m = keras.models.load_model("{1}", compile=False)
xs = [x.astype(i.dtype) for x, i in zip(xs, m.inputs)]
ys = m.predict(xs, verbose=0)
ys = ys if isinstance(ys, list) else [ys]
for y, e in zip(ys, case["outputs"]):
    assert np.allclose(np.asarray(y).ravel(), e["values"], atol=2e-5), (y, e["values"])
)", keras_model_fixtures() + name + ".json", path);
  EXPECT_EQ(run_python(python, script), 0);
}

}  // namespace strata::test
