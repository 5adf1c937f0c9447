// Keras's weight constraints: four models saved untrained by Keras 3 with MaxNorm, NonNeg, UnitNorm and
// MinMaxNorm on kernels, biases, recurrent kernels, gamma and beta, a depthwise kernel, embeddings, inside
// Bidirectional and on MultiHeadAttention's kernels (scripts/fixtures/keras_constraints.py) train one epoch
// to Keras's weights (one with Adam and use_ema); each constraint against a projection computed here in
// double over several axes; names and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/strata.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasConstrainedModel : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasConstrainedModel, TrainsAsKeras) {
  const std::string name = GetParam();
  const Json record = test::read_record(name);
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  const OptimizerRef optimizer = record["optimizer"] == "sgd"
                                     ? OptimizerRef(SGD(SGDOptions{.learning_rate = 0.1f}))
                                     : OptimizerRef(Adam(AdamOptions{.learning_rate = 0.05f, .use_ema = true, .ema_momentum = 0.5f}));
  model->compile({.optimizer = optimizer, .loss = "sparse_categorical_crossentropy"});
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 1e-5)
      << "the second batch sees the projected weights";
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST_P(KerasConstrainedModel, PredictsAsKerasDid) { test::check_predicts_as_keras_did(GetParam()); }
TEST_P(KerasConstrainedModel, SavedFilesKeepTheConstraints) {
  test::check_saved_files_round_trip(GetParam());
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + GetParam() + ".keras");
  EXPECT_NE(model->to_json().dump().find("\"keras.constraints\""), std::string::npos);
}
TEST_P(KerasConstrainedModel, KerasLoadsStrataFile) { test::check_keras_loads_strata_file(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Models, KerasConstrainedModel,
                         ::testing::Values("constrained_dense", "constrained_conv", "constrained_recurrent", "constrained_attention"));

// Keras's projection of w (row-major, `shape`), in double: the norm over `axes` of each slice.
std::vector<double> project(const std::string& kind, const std::vector<float>& w, const std::vector<std::int64_t>& shape,
                            const std::vector<int>& axes, double min_value, double max_value, double rate) {
  const int rank = int(shape.size());
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int d = rank - 2; d >= 0; --d) strides[std::size_t(d)] = strides[std::size_t(d + 1)] * shape[std::size_t(d + 1)];
  auto reduced = [&](int d) { return axes.empty() || std::find(axes.begin(), axes.end(), d) != axes.end(); };
  // The slice an element belongs to: its index with the reduced axes set to 0.
  auto slice_of = [&](std::size_t i) {
    std::int64_t key = 0;
    for (int d = 0; d < rank; ++d)
      if (!reduced(d)) key += (std::int64_t(i) / strides[std::size_t(d)] % shape[std::size_t(d)]) * strides[std::size_t(d)];
    return key;
  };
  std::map<std::int64_t, double> squares;
  for (std::size_t i = 0; i < w.size(); ++i) squares[slice_of(i)] += double(w[i]) * w[i];
  std::vector<double> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double norm = std::sqrt(squares[slice_of(i)]);
    if (kind == "NonNeg") out[i] = std::max(double(w[i]), 0.0);
    else if (kind == "UnitNorm") out[i] = w[i] / (1e-7 + norm);
    else {
      const double desired = rate * std::clamp(norm, min_value, max_value) + (1 - rate) * norm;
      out[i] = w[i] * desired / (1e-7 + norm);
    }
  }
  return out;
}

TEST(Constraints, ProjectAfterEachUpdateAsComputedHere) {
  // A kernel of shape (3, 4, 5) behind Conv1D, and Dense's (5, 2) and bias: SGD with learning rate 0 leaves
  // the weights as they are, so one step leaves exactly each constraint's projection.
  struct Case {
    std::string kind;
    Json axis;
    std::vector<int> axes;
    float min_value, max_value, rate;
  };
  const std::vector<Case> cases{{"MaxNorm", 0, {0}, 0, 0.8f, 1}, {"MaxNorm", Json::array({0, 1}), {0, 1}, 0, 1.5f, 1},
                                {"MaxNorm", -1, {2}, 0, 0.5f, 1},  {"UnitNorm", Json::array({0, 2}), {0, 2}, 0, 0, 1},
                                {"UnitNorm", nullptr, {}, 0, 0, 1}, {"MinMaxNorm", 1, {1}, 1.2f, 1.6f, 0.6f},
                                {"MinMaxNorm", Json::array({2, 0}), {0, 2}, 2.5f, 3.f, 1}, {"NonNeg", nullptr, {}, 0, 0, 1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.kind + " axis " + c.axis.dump());
    clear_session();
    Json config{{"max_value", c.max_value}, {"axis", c.axis}};
    if (c.kind == "UnitNorm") config = {{"axis", c.axis}};
    if (c.kind == "MinMaxNorm") config = {{"min_value", c.min_value}, {"max_value", c.max_value}, {"rate", c.rate}, {"axis", c.axis}};
    if (c.kind == "NonNeg") config = Json::object();
    const Json constraint{{"class_name", c.kind}, {"config", config}};
    auto conv = layer_from_config("Conv1D", Json{{"filters", 5}, {"kernel_size", 3}, {"kernel_constraint", constraint}});
    auto dense = layer_from_config("Dense", Json{{"units", 2}, {"bias_constraint", "non_neg"}});
    Tensor in = Input({6, 4});
    Model model({in}, {(*dense)(GlobalAveragePooling1D()((*conv)(in)))});
    model.compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.f}), .loss = "mse"});
    std::vector<float> kernel(60), bias{0.3f, -0.2f, 0.1f, -0.4f, 0.5f}, dense_kernel(10), dense_bias{-0.5f, 0.25f};
    for (std::size_t i = 0; i < kernel.size(); ++i) kernel[i] = float(std::sin(1.7 * double(i) + 0.3)) * 0.9f;
    for (std::size_t i = 0; i < dense_kernel.size(); ++i) dense_kernel[i] = float(std::cos(0.9 * double(i)));
    model.set_weights({Array::from_floats(kernel, {3, 4, 5}), Array::from_floats(bias, {5}), Array::from_floats(dense_kernel, {5, 2}),
                       Array::from_floats(dense_bias, {2})});
    model.fit(Array::from_floats(std::vector<float>(48, 0.5f), {2, 6, 4}), Array::from_floats({0, 1, 1, 0}, {2, 2}),
              {.epochs = 1, .batch_size = 2, .verbose = 0});
    const auto weights = model.get_weights();
    const std::vector<double> want = project(c.kind, kernel, {3, 4, 5}, c.axes, c.min_value, c.max_value, c.rate);
    const auto got = weights[0].to_floats();
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << "kernel element " << i;
    EXPECT_EQ(weights[1].to_floats(), bias) << "no bias_constraint";
    EXPECT_EQ(weights[3].to_floats(), (std::vector<float>{0.f, 0.25f})) << "NonNeg on Dense's bias";
  }
}

TEST(Constraints, SetFromCppAndFrozenLayersKeepTheirWeights) {
  clear_session();
  auto dense = std::make_shared<Dense>(2);
  dense->set_constraint("kernel", constraints::MaxNorm(0.1f));
  Tensor in = Input({3});
  Model model({in}, {(*dense)(in)});
  model.compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.f}), .loss = "mse"});
  const Array x = Array::from_floats({1, 2, 3, 4, 5, 6}, {2, 3}), y = Array::from_floats({0, 1, 1, 0}, {2, 2});
  const std::vector<float> kernel{1, -2, 0.5f, 3, -1, 0};
  model.set_weights({Array::from_floats(kernel, {3, 2}), Array::from_floats({0, 0}, {2})});
  model.fit(x, y, {.epochs = 1, .batch_size = 2, .verbose = 0});
  const auto projected = model.get_weights()[0].to_floats();
  const std::vector<double> want = project("MaxNorm", kernel, {3, 2}, {0}, 0, 0.1, 1);
  for (std::size_t i = 0; i < projected.size(); ++i) EXPECT_NEAR(projected[i], want[i], 1e-6);
  // Frozen: not trained, so not projected (Keras projects the variables the optimizer updated).
  model.set_weights({Array::from_floats(kernel, {3, 2}), Array::from_floats({0, 0}, {2})});
  dense->set_trainable(false);
  model.compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.f}), .loss = "mse"});
  model.fit(x, y, {.epochs = 1, .batch_size = 2, .verbose = 0});
  EXPECT_EQ(model.get_weights()[0].to_floats(), kernel);
  // Written into the config as Keras writes it; removed with null.
  Json c = dense->full_config();
  EXPECT_EQ(c["kernel_constraint"]["class_name"], "MaxNorm");
  EXPECT_NEAR(c["kernel_constraint"]["config"]["max_value"].get<double>(), 0.1, 1e-7);
  EXPECT_EQ(c["kernel_constraint"]["config"]["axis"], 0);
  dense->set_constraint("kernel", nullptr);
  EXPECT_TRUE(dense->full_config()["kernel_constraint"].is_null());
}

TEST(Constraints, NamesAndErrors) {
  clear_session();
  // Keras's names and their defaults, Keras 2's form and the YAML front door's.
  const LayerPtr d = layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", "max_norm"}, {"bias_constraint", "NonNeg"}});
  EXPECT_EQ(d->constraints().at("kernel")->class_name, "MaxNorm");
  EXPECT_FLOAT_EQ(d->constraints().at("kernel")->max_value, 2.f);
  EXPECT_EQ(d->constraints().at("kernel")->axis, 0);
  EXPECT_EQ(d->constraints().at("bias")->class_name, "NonNeg");
  const LayerPtr e = layer_from_config(
      "Embedding", Json{{"input_dim", 5}, {"output_dim", 2}, {"embeddings_constraint", {{"class_name", "UnitNorm"}, {"config", {{"axis", 1}}}}}});
  EXPECT_EQ(e->constraints().at("embeddings")->axis, 1);
  const LayerPtr y = layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", {{"MinMaxNorm", {{"max_value", 3}}}}}});
  EXPECT_FLOAT_EQ(y->constraints().at("kernel")->max_value, 3.f);
  EXPECT_FLOAT_EQ(y->constraints().at("kernel")->min_value, 0.f);
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", "radial"}}); },
                                "Dense: kernel_constraint: unsupported constraint 'radial'");
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", {{"MaxNorm", {{"max_value", -1}}}}}}); },
                                "max_value must be a non-negative number, got -1");
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", {{"UnitNorm", {{"axis", "rows"}}}}}}); },
                                "axis must be an integer, a list of integers or null");
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", {{"NonNeg", {{"axis", 0}}}}}}); },
                                "unknown NonNeg config key 'axis'");
  test::expect_error_containing([] { layer_from_config("Dropout", Json{{"rate", 0.5}, {"kernel_constraint", "non_neg"}}); },
                                "Dropout: unknown or unsupported config key 'kernel_constraint'");
  // An axis the weight does not have: named with the variable when the training program is made.
  auto dense = layer_from_config("Dense", Json{{"units", 2}, {"kernel_constraint", {{"MaxNorm", {{"axis", 2}}}}}});
  Tensor in = Input({3});
  Model model({in}, {(*dense)(in)});
  model.compile({.optimizer = "sgd", .loss = "mse"});
  test::expect_error_containing(
      [&] { model.fit(Array::from_floats({1, 2, 3}, {1, 3}), Array::from_floats({0, 1}, {1, 2}), {.epochs = 1, .verbose = 0}); },
      "constraint axis 2 is out of range for a weight of shape (3, 2)");
}

}  // namespace
}  // namespace strata
