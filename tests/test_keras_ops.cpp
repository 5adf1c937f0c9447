// Keras operations recorded as nodes of a functional model (scripts/fixtures/keras_ops_model.py: constants
// on either side of arithmetic, x[...] indexing, reductions, reshapes, matmul, concatenation, nn
// activations): the Keras-saved model predicts as Keras did, trains one epoch to Keras's weights (the
// gradients pass through every op), writes its config back as Keras wrote it and loads back into Keras;
// indexing against a loop reference; errors. A tf.keras 2 model whose TensorFlow functions are
// TFOpLambda/SlicingOpLambda layers (scripts/fixtures/tf_keras_op_layers.py) predicts and trains as Keras 2
// did and is written back as Keras 3 operations.
#include <gtest/gtest.h>

#include <fstream>

#include "api/strata.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(KerasOps, SavedModelPredictsAsKerasDid) { test::check_predicts_as_keras_did("ops_model"); }
TEST(KerasOps, SavedFilesRoundTrip) { test::check_saved_files_round_trip("ops_model"); }
TEST(KerasOps, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("ops_model"); }

TEST(KerasOps, TrainsAsKeras) {
  const Json record = test::read_record("ops_model");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "ops_model.keras");
  model->compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.1f}), .loss = "sparse_categorical_crossentropy"});
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(KerasOps, ConfigIsWrittenBackAsKerasWroteIt) {
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "ops_model.keras");
  const Json config = model->to_json()["config"];
  std::map<std::string, Json> by_name;
  for (const Json& l : config["layers"]) by_name[l["name"].get<std::string>()] = l;
  // 1.0 - x keeps the constant first; an op's config is its name and constructor arguments only.
  const Json& subtract = by_name.at("subtract");
  EXPECT_EQ(subtract["module"], "keras.src.ops.numpy");
  EXPECT_EQ(subtract["config"], (Json{{"name", "subtract"}}));
  EXPECT_EQ(subtract["inbound_nodes"][0]["args"][0], 1.0);
  EXPECT_EQ(subtract["inbound_nodes"][0]["args"][1]["class_name"], "__keras_tensor__");
  EXPECT_EQ(by_name.at("mean")["config"], (Json{{"name", "mean"}, {"axis", 1}, {"keepdims", true}}));
  EXPECT_EQ(by_name.at("get_item_1")["inbound_nodes"][0]["args"][1][1], -1);
}

TEST(KerasOps, TfKerasOpLayersPredictAndTrainAsKeras2) {
  const Json record = test::read_record("tf_ops_model");
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "tf_ops_model.h5");
  const Array x = test::read_recorded_array(record["inputs"][0]);
  const auto got = model->predict(x, {.verbose = 0}).to_floats(), want = test::read_recorded_array(record["outputs"][0]).to_floats();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  // Written back as Keras 3 operations: 1.0 - x keeps its constant first.
  const Json config = model->to_json()["config"];
  bool found = false;
  for (const Json& l : config["layers"])
    if (l["name"] == "tf.math.subtract") {
      found = true;
      EXPECT_EQ(l["module"], "keras.src.ops.numpy");
      EXPECT_EQ(l["class_name"], "Subtract");
      EXPECT_EQ(l["inbound_nodes"][0]["args"][0], 1.0);
    }
  EXPECT_TRUE(found);
  model->compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.1f}), .loss = "sparse_categorical_crossentropy"});
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(KerasOps, TfOpLambdaErrors) {
  const Json node = Json::array({Json::array({Json::array({"dense", 0, 0, Json{{"name", nullptr}}})})});
  test::expect_error_containing(
      [&] { KerasOp::from_tf_entry(Json{{"class_name", "TFOpLambda"}, {"name", "tf.signal.fft"}, {"config", {{"function", "signal.fft"}}}, {"inbound_nodes", node}}); },
      "'tf.signal.fft' is the TensorFlow function tf.signal.fft, which Strata does not compute");
  const Json matmul_node = Json::array({Json::array({"dense", 0, 0, Json{{"b", Json::array({"dense", 0, 0})}, {"transpose_b", true}}})});
  const Json entry{{"class_name", "TFOpLambda"}, {"name", "tf.linalg.matmul"}, {"config", {{"function", "linalg.matmul"}}}, {"inbound_nodes", Json::array({matmul_node})}};
  auto op = std::dynamic_pointer_cast<KerasOp>(KerasOp::from_tf_entry(entry));
  test::expect_error_containing([&] { KerasOp::tf_node(matmul_node, *op); }, "keyword argument 'transpose_b' = true is not supported");
}

// x[index] on a (2, 4, 3) tensor, against the element loop the index describes.
TEST(KerasOps, GetItemMatchesLoops) {
  const Json all = {{"class_name", "__slice__"}, {"config", {{"start", nullptr}, {"stop", nullptr}, {"step", nullptr}}}};
  auto range = [](Json start, Json stop) { return Json{{"class_name", "__slice__"}, {"config", {{"start", start}, {"stop", stop}, {"step", 1}}}}; };
  const Json ellipsis = {{"class_name", "__ellipsis__"}, {"config", Json::object()}};
  std::vector<float> x(24);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  auto at = [&](int b, int r, int c) { return x[std::size_t(b * 12 + r * 3 + c)]; };
  struct Case {
    Json index;
    Shape shape;
    std::function<float(int, int, int)> element;  // output (b, i, j) of the (possibly lower-rank) result
  };
  const std::vector<Case> cases{
      {Json::array({all, 1}), {2, 3}, [&](int b, int i, int) { return at(b, 1, i); }},
      {Json::array({all, -1, all}), {2, 3}, [&](int b, int i, int) { return at(b, 3, i); }},
      {Json::array({all, range(1, 3)}), {2, 2, 3}, [&](int b, int i, int j) { return at(b, 1 + i, j); }},
      {Json::array({all, range(-2, nullptr), range(nullptr, -1)}), {2, 2, 2}, [&](int b, int i, int j) { return at(b, 2 + i, j); }},
      {Json::array({ellipsis, 2}), {2, 4}, [&](int b, int i, int) { return at(b, i, 2); }},
      {Json::array({all, nullptr, 0}), {2, 1, 3}, [&](int b, int, int j) { return at(b, 0, j); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.index.dump());
    clear_session();
    Tensor in = Input({4, 3});
    auto op = std::make_shared<KerasOp>("keras.src.ops.numpy", "GetItem", Json::object(), "");
    const std::vector<Tensor> out = op->apply({in}, Json{{"args", Json::array({Json{{"__tensor__", 0}}, c.index})}});
    Model model({in}, {out[0]});
    const Array y = model.predict(Array::from_floats(x, {2, 4, 3}), {.verbose = 0});
    ASSERT_EQ(y.shape(), c.shape);
    const auto values = y.to_floats();
    const std::int64_t d1 = c.shape.rank() > 1 ? c.shape[1] : 1, d2 = c.shape.rank() > 2 ? c.shape[2] : 1;
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < d1; ++i)
        for (int j = 0; j < d2; ++j) EXPECT_EQ(values[std::size_t((b * d1 + i) * d2 + j)], c.element(b, i, j)) << b << " " << i << " " << j;
  }
}

TEST(KerasOps, Errors) {
  test::expect_error_containing([] { KerasOp("keras.src.ops.numpy", "Cumsum", Json::object(), "cumsum"); },
                                "'cumsum' is the Keras op Cumsum (keras.src.ops.numpy), which Strata does not compute");
  clear_session();
  Tensor in = Input({4, 3});
  auto step = std::make_shared<KerasOp>("keras.src.ops.numpy", "GetItem", Json::object(), "strided");
  const Json every_other = {{"class_name", "__slice__"}, {"config", {{"start", nullptr}, {"stop", nullptr}, {"step", 2}}}};
  test::expect_error_containing([&] { step->apply({in}, Json{{"args", Json::array({Json{{"__tensor__", 0}}, Json::array({every_other})})}}); },
                                "a step other than 1");
  const Json all = {{"class_name", "__slice__"}, {"config", {{"start", nullptr}, {"stop", nullptr}, {"step", nullptr}}}};
  auto index = std::make_shared<KerasOp>("keras.src.ops.numpy", "GetItem", Json::object(), "beyond");
  test::expect_error_containing([&] { index->apply({in}, Json{{"args", Json::array({Json{{"__tensor__", 0}}, Json::array({all, 4})})}}); },
                                "index 4 is out of range for axis 1 of size 4");
  auto batch = std::make_shared<KerasOp>("keras.src.ops.numpy", "GetItem", Json::object(), "first_sample");
  test::expect_error_containing([&] { batch->apply({in}, Json{{"args", Json::array({Json{{"__tensor__", 0}}, 0})}}); },
                                "axis 0 has no fixed size to index");
}

}  // namespace
}  // namespace strata
