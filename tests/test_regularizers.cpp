// Keras's weight regularizers: three models saved untrained by Keras 3 with L1, L2 and L1L2 on kernels,
// biases, recurrent kernels, BatchNormalization's gamma and beta, a depthwise kernel and inside
// Bidirectional (scripts/fixtures/keras_regularizers.py), and three with activity regularizers
// (scripts/fixtures/keras_activity_regularizers.py), evaluate to Keras's loss, penalties included, and
// train one epoch of SGD to Keras's weights; the penalties against sums in double; errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/strata.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasRegularizedModel : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasRegularizedModel, EvaluatesAndTrainsAsKeras) {
  const std::string name = GetParam();
  const Json record = test::read_record(name);
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  model->compile({.optimizer = SGD(SGDOptions{.learning_rate = 0.1f}), .loss = "sparse_categorical_crossentropy"});
  const Array x = test::read_recorded_array(record["inputs"][0]);
  const auto labels = record["y"].get<std::vector<std::int32_t>>();
  const Array y = Array::from_ints(labels, {std::int64_t(labels.size())});
  // The activity models were run in batches of 6 (the last of 4), the others evaluated in one batch.
  const int batch = record.value("batch_size", 8);
  EXPECT_NEAR(model->evaluate(x, y, {.batch_size = record.contains("batch_size") ? batch : 16, .verbose = 0}).at("loss"),
              record["evaluate_loss"].get<double>(), 1e-5)
      << "the compiled loss plus every penalty";
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, batch), record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST_P(KerasRegularizedModel, PredictsAsKerasDid) { test::check_predicts_as_keras_did(GetParam()); }
TEST_P(KerasRegularizedModel, SavedFilesKeepTheRegularizers) {
  test::check_saved_files_round_trip(GetParam());
  // The regularizers are written back as Keras wrote them.
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + GetParam() + ".keras");
  const std::string saved = model->to_json().dump();
  EXPECT_NE(saved.find("\"keras.regularizers\""), std::string::npos);
}
TEST_P(KerasRegularizedModel, KerasLoadsStrataFile) { test::check_keras_loads_strata_file(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Models, KerasRegularizedModel,
                         ::testing::Values("regularized_dense", "regularized_conv", "regularized_recurrent", "activity_dense", "activity_nested",
                                           "activity_sequence"));

TEST(Regularizers, ActivityPenaltyPerSampleOnEveryCall) {
  // Dense(2) with L1L2(0.3, 0.2) on its output, called twice in one model: MSE on the sum of both calls
  // plus each call's penalty divided by the batch size (3 rows), computed here in double.
  clear_session();
  auto dense = std::make_shared<Dense>(2);
  dense->set_activity_regularizer(regularizers::L1L2(0.3f, 0.2f));
  Tensor a = Input({3}), b = Input({3});
  Model model({a, b}, {Add()({(*dense)(a), (*dense)(b)})});
  model.compile({.optimizer = "sgd", .loss = "mse"});
  const std::vector<float> kernel{0.5f, -1.f, 0.25f, 2.f, -0.75f, 0.f}, bias{0.1f, -0.2f};
  model.set_weights({Array::from_floats(kernel, {3, 2}), Array::from_floats(bias, {2})});
  const std::vector<float> xa{1, 2, -1, 0.5f, 0, 1, -2, 1, 0.5f}, xb{0, 1, 1, -1, 0.5f, 2, 1, 1, -1}, ys{0.5f, -1, 2, 0, 1, 1};
  auto out = [&](const std::vector<float>& x, int r, int j) {
    double v = bias[std::size_t(j)];
    for (int k = 0; k < 3; ++k) v += double(x[std::size_t(3 * r + k)]) * kernel[std::size_t(2 * k + j)];
    return v;
  };
  auto penalty = [&](const std::vector<float>& x) {
    double p = 0;
    for (int r = 0; r < 3; ++r)
      for (int j = 0; j < 2; ++j) p += (0.3 * std::abs(out(x, r, j)) + 0.2 * out(x, r, j) * out(x, r, j)) / 3;
    return p;
  };
  double both = 0, first = 0;
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 2; ++j) {
      const double y = ys[std::size_t(2 * r + j)];
      both += std::pow(out(xa, r, j) + out(xb, r, j) - y, 2) / 6;
      first += std::pow(out(xa, r, j) - y, 2) / 6;
    }
  const Array x_a = Array::from_floats(xa, {3, 3}), x_b = Array::from_floats(xb, {3, 3}), y = Array::from_floats(ys, {3, 2});
  EXPECT_NEAR(model.evaluate({x_a, x_b}, {y}, {.verbose = 0}).at("loss"), both + penalty(xa) + penalty(xb), 1e-5);
  EXPECT_EQ(dense->full_config()["activity_regularizer"]["class_name"], "L1L2");
  // The ActivityRegularization layer: the same penalty on its input, which it passes on.
  Model passing({a}, {ActivityRegularization({.l1 = 0.3f, .l2 = 0.2f})((*dense)(a))});
  passing.compile({.optimizer = "sgd", .loss = "mse"});
  EXPECT_NEAR(passing.evaluate(x_a, y, {.verbose = 0}).at("loss"), first + 2 * penalty(xa), 1e-5) << "Dense's and the layer's";
  // A model of a third call counts that call's penalty only.
  Model single({a}, {(*dense)(a)});
  single.compile({.optimizer = "sgd", .loss = "mse"});
  EXPECT_NEAR(single.evaluate(x_a, y, {.verbose = 0}).at("loss"), first + penalty(xa), 1e-5);
}

TEST(Regularizers, PenaltyOnAWeightSetByHand) {
  // Dense(2) with L1L2(0.3, 0.2) on the kernel and L2(0.5) on the bias, set from C++: MSE plus the penalty,
  // summed here in double from the weights.
  clear_session();
  auto dense = std::make_shared<Dense>(2);
  dense->set_regularizer("kernel", regularizers::L1L2(0.3f, 0.2f));
  dense->set_regularizer("bias", regularizers::L2(0.5f));
  Tensor in = Input({3});
  Model model({in}, {(*dense)(in)});
  model.compile({.optimizer = "sgd", .loss = "mse"});
  const std::vector<float> kernel{0.5f, -1.f, 0.25f, 2.f, -0.75f, 0.f}, bias{0.1f, -0.2f};
  model.set_weights({Array::from_floats(kernel, {3, 2}), Array::from_floats(bias, {2})});
  const std::vector<float> xs{1, 2, -1, 0.5f, 0, 1}, ys{0.5f, -1, 2, 0};
  double mse = 0;
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < 2; ++j) {
      double out = bias[std::size_t(j)];
      for (int k = 0; k < 3; ++k) out += double(xs[std::size_t(3 * r + k)]) * kernel[std::size_t(2 * k + j)];
      mse += std::pow(out - ys[std::size_t(2 * r + j)], 2) / 4;
    }
  double penalty = 0;
  for (float w : kernel) penalty += 0.3 * std::abs(w) + 0.2 * double(w) * w;
  for (float b : bias) penalty += 0.5 * double(b) * b;
  const Logs logs = model.evaluate(Array::from_floats(xs, {2, 3}), Array::from_floats(ys, {2, 2}), {.verbose = 0});
  EXPECT_NEAR(logs.at("loss"), mse + penalty, 1e-5);
  // A frozen layer's weights carry no penalty, as Keras counts trainable weights only.
  dense->set_trainable(false);
  model.compile({.optimizer = "sgd", .loss = "mse"});
  EXPECT_NEAR(model.evaluate(Array::from_floats(xs, {2, 3}), Array::from_floats(ys, {2, 2}), {.verbose = 0}).at("loss"), mse, 1e-5);
  // Written into the config as Keras writes them.
  const Json c = dense->full_config();
  EXPECT_EQ(c["kernel_regularizer"]["class_name"], "L1L2");
  EXPECT_NEAR(c["kernel_regularizer"]["config"]["l1"].get<double>(), 0.3, 1e-7);
  EXPECT_EQ(c["bias_regularizer"]["class_name"], "L2");
}

TEST(Regularizers, NamesAndErrors) {
  clear_session();
  // Keras's names and their defaults.
  const LayerPtr d = layer_from_config("Dense", Json{{"units", 2}, {"kernel_regularizer", "l2"}, {"bias_regularizer", "L1"}});
  EXPECT_FLOAT_EQ(d->regularizers().at("kernel").l2, 0.01f);
  EXPECT_FLOAT_EQ(d->regularizers().at("bias").l1, 0.01f);
  // Keras 2's form.
  const LayerPtr e = layer_from_config("Embedding", Json{{"input_dim", 5}, {"output_dim", 2},
                                                         {"embeddings_regularizer", {{"class_name", "L1L2"}, {"config", {{"l1", 0.0}, {"l2", 0.25}}}}}});
  EXPECT_FLOAT_EQ(e->regularizers().at("embeddings").l2, 0.25f);
  // The YAML front door's form.
  const LayerPtr y = layer_from_config("Dense", Json{{"units", 2}, {"kernel_regularizer", {{"L1L2", {{"l1", 0.5}}}}}});
  EXPECT_FLOAT_EQ(y->regularizers().at("kernel").l1, 0.5f);
  EXPECT_FLOAT_EQ(layer_from_config("Flatten", Json{{"activity_regularizer", "l2"}})->activity_regularizer()->l2, 0.01f) << "any layer takes one";
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_regularizer", "orthogonal_regularizer"}}); },
                                "unsupported regularizer 'orthogonal_regularizer'");
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_regularizer", {{"class_name", "L2"}, {"config", {{"l2", -1}}}}}}); },
                                "Dense: kernel_regularizer: l2 must be a non-negative number, got -1");
  test::expect_error_containing([] { layer_from_config("Dropout", Json{{"rate", 0.5}, {"kernel_regularizer", "l2"}}); },
                                "Dropout: unknown or unsupported config key 'kernel_regularizer'");
  test::expect_error_containing([] { layer_from_config("Dense", Json{{"units", 2}, {"kernel_regularizer", 3}}); }, "a regularizer must be a name");
}

}  // namespace
}  // namespace strata
