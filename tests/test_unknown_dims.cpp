// Inputs with unknown dimensions besides the batch (Keras's Input((None,)), Input((None, None, 3))): Keras-saved
// models (scripts/fixtures/keras_unknown_dims.py: a text CNN over token ids of any length with strided, causal
// and "same" convolutions; a convnet over images of any size; attention and TimeDistributed over tokens of any
// length; strided "same" convolutions and pools, whose padding is known only once the size is; a U-Net and a 1-D
// decoder, whose outputs are as large as their inputs: transposed convolutions, repeats, padding and cropping;
// recurrent layers over any number of steps: a masked bidirectional LSTM and a GRU over token ids, a SimpleRNN,
// an LSTM returning its states and a backwards GRU over series, a ConvLSTM2D over frames) predict as Keras did
// at two sizes each, keep their None dimensions through saving, load back into Keras, and train as Keras did; the reshapes that keep unknown dimensions, planned at several sizes; the
// errors of what needs a known size. Gradients through them are in test_gradients.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>

#include "api/strata.h"
#include "graph/program.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

std::vector<Array> recorded(const Json& arrays) {
  std::vector<Array> out;
  for (const Json& a : arrays) out.push_back(test::read_recorded_array(a));
  return out;
}

class UnknownDimsModels : public ::testing::TestWithParam<const char*> {};

TEST_P(UnknownDimsModels, PredictAsKerasDidAtEverySize) {
  const std::string name = GetParam();
  const Json record = test::read_record(name);
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  for (const Json& c : record["cases"]) {
    SCOPED_TRACE(c["inputs"][0]["shape"].dump());
    test::expect_outputs(model->predict(recorded(c["inputs"]), {.verbose = 0}), recorded(c["outputs"]));
  }
  // Keras's .weights.h5 into the model rebuilt from its config.
  auto rebuilt = model_from_json(model->to_json());
  rebuilt->load_weights(test::keras_model_fixtures() + name + ".weights.h5");
  const Json& last = record["cases"].back();
  test::expect_outputs(rebuilt->predict(recorded(last["inputs"]), {.verbose = 0}), recorded(last["outputs"]));
}

TEST_P(UnknownDimsModels, KeepTheirUnknownDimensionsThroughSaving) {
  const std::string name = GetParam();
  test::check_saved_files_round_trip(name);
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  const Json input = model->get_config()["layers"][0]["config"]["batch_shape"];
  EXPECT_TRUE(input[1].is_null()) << input.dump();
  EXPECT_NE(model->summary_string().find("(None, None"), std::string::npos) << model->summary_string();
}

TEST_P(UnknownDimsModels, KerasLoadsStrataFile) { test::check_keras_loads_strata_file(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Keras, UnknownDimsModels, ::testing::Values("unknown_text_cnn", "unknown_images", "unknown_transformer",
                                                                           "unknown_strided_same", "unknown_unet", "unknown_decoder_1d", "unknown_steps_text",
                                                                           "unknown_steps_series", "unknown_steps_frames"));

class UnknownDimsTraining : public ::testing::TestWithParam<const char*> {};

TEST_P(UnknownDimsTraining, NextEpochAsKerasThenAnotherSize) {
  const std::string name = GetParam();
  const Json record = test::read_record(name);
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  const History h = model->fit(test::read_recorded_array(record["train_x"]), test::read_recorded_array(record["targets"]),
                               {.epochs = 1, .batch_size = 4, .verbose = 0, .shuffle = false});
  EXPECT_NEAR(h.history.at("loss")[0], record["fit_loss"].get<double>(), 1e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
  // Then the recorded cases, at sizes other than the training batch's, in the same model: same shapes out.
  for (const Json& c : record["cases"])
    EXPECT_EQ(model->predict(test::read_recorded_array(c["inputs"][0]), {.verbose = 0}).shape(),
              test::read_recorded_array(c["outputs"][0]).shape());
}

INSTANTIATE_TEST_SUITE_P(Keras, UnknownDimsTraining,
                         ::testing::Values("unknown_text_cnn", "unknown_strided_same", "unknown_unet", "unknown_steps_text"));

TEST(UnknownDims, RecurrentLayersStayUnknownInTheModelAfterRunningAtAnySize) {
  // Each length traces the model again; the model itself (summary, config) keeps its unknown steps.
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "unknown_steps_series.keras");
  const std::string before = model->summary_string();
  EXPECT_NE(before.find("(None, None, 5)"), std::string::npos) << before;
  for (const std::int64_t steps : {4, 9, 4}) {
    const std::vector<Array> out = model->predict(std::vector<Array>{Array(Shape{3, steps, 3}, DType::float32)}, {.verbose = 0});
    EXPECT_EQ(out[0].shape(), Shape({3, steps, 2}));
    EXPECT_EQ(out[1].shape(), Shape({3, 2}));
  }
  EXPECT_EQ(model->summary_string(), before);
  EXPECT_EQ(model->get_layer("lstm")->output_shapes()[0], Shape({-1, -1, 5}));
}

TEST(UnknownDims, ManyLengthsKeepABoundedNumberOfTraces) {
  // A service predicting one request at a time, each of its own length: the model keeps the traces of the
  // lengths used last only, and a forgotten length traces again to the same numbers.
  clear_session();
  const Tensor in = Input({-1, 3});
  Model model(in, Dense(2)(LSTM(4)(in)));
  model.compile(Adam({.learning_rate = 0.01}), "mse");
  auto sample = [](std::int64_t steps) {
    return Array::from_floats(test::random_vector(std::size_t(2 * steps * 3), -1.f, 1.f, std::uint32_t(steps)), {2, steps, 3});
  };
  const std::vector<float> first = model.predict(sample(2), {.verbose = 0}).to_floats();
  for (std::int64_t steps = 3; steps < 3 + 2 * std::int64_t(Model::kMaxTracedShapes); ++steps) {
    EXPECT_EQ(model.predict(sample(steps), {.verbose = 0}).shape(), Shape({2, 2}));
    EXPECT_LE(model.traced_shapes(), Model::kMaxTracedShapes);
  }
  EXPECT_EQ(model.traced_shapes(), Model::kMaxTracedShapes);
  EXPECT_EQ(model.predict(sample(2), {.verbose = 0}).to_floats(), first);
  // fit keeps its own trace while a callback predicts at many other lengths between its epochs.
  auto predict_elsewhere = std::make_shared<LambdaCallback>();
  predict_elsewhere->on_epoch_end_fn = [&](int, const Logs&) {
    for (std::int64_t steps = 40; steps < 40 + 2 * std::int64_t(Model::kMaxTracedShapes); ++steps) (void)model.predict(sample(steps), {.verbose = 0});
  };
  const Array x = sample(5), y = Array::from_floats(std::vector<float>(4, 0.5f), {2, 2});
  const History h = model.fit(x, y, {.epochs = 3, .batch_size = 2, .verbose = 0, .callbacks = {predict_elsewhere},
                                     .validation_data = ValidationData{{sample(6)}, {y}}});
  ASSERT_EQ(h.history.at("loss").size(), 3u);
  EXPECT_LT(h.history.at("loss")[2], h.history.at("loss")[0]);
  EXPECT_LE(model.traced_shapes(), Model::kMaxTracedShapes);
}

TEST(UnknownDims, Seq2SeqOverAnyLengthsTrainsAsItsFixedLengthTwin) {
  // Keras's character-level seq2seq: an encoder LSTM's states start a decoder LSTM, each over its own
  // unknown length. The same weights at known lengths are the reference: same predictions, same epoch.
  clear_session();
  set_random_seed(5);
  auto seq2seq = [](std::int64_t encoder_steps, std::int64_t decoder_steps) {
    const Tensor encoder = Input({encoder_steps, 3}), decoder = Input({decoder_steps, 4});
    const std::vector<Tensor> states = LSTM(5, {.return_state = true}).apply({encoder});
    const Tensor sequence = LSTM(5, {.return_sequences = true}).apply({decoder, states[1], states[2]})[0];
    auto model = std::make_unique<Model>(std::vector<Tensor>{encoder, decoder}, Dense(4, {.activation = "softmax"})(sequence));
    model->compile(Adam({.learning_rate = 0.01}), "sparse_categorical_crossentropy");
    return model;
  };
  auto any = seq2seq(-1, -1), fixed = seq2seq(6, 5);
  fixed->set_weights(any->get_weights());
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  auto random_array = [&](Shape shape) {
    std::vector<float> v(std::size_t(shape.numel()));
    for (float& x : v) x = normal(rng);
    return Array::from_floats(v, shape);
  };
  const std::vector<Array> x = {random_array({8, 6, 3}), random_array({8, 5, 4})};
  std::vector<std::int32_t> labels(40);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(rng() % 4);
  const Array y = Array::from_ints(labels, {8, 5});
  test::expect_outputs(any->predict(x, {.verbose = 0}), fixed->predict(x, {.verbose = 0}), 1e-6);
  const FitOptions epoch{.epochs = 1, .batch_size = 4, .verbose = 0, .shuffle = false};
  const double any_loss = any->fit(x, {y}, epoch).history.at("loss")[0], fixed_loss = fixed->fit(x, {y}, epoch).history.at("loss")[0];
  EXPECT_NEAR(any_loss, fixed_loss, 1e-6);
  test::expect_outputs(any->get_weights(), fixed->get_weights(), 1e-6);
  // Other lengths in the same model, the decoder's output as long as its input.
  EXPECT_EQ(any->predict(std::vector<Array>{random_array({2, 9, 3}), random_array({2, 2, 4})}, {.verbose = 0})[0].shape(), Shape({2, 2, 4}));
  EXPECT_NO_THROW(any->evaluate({random_array({3, 4, 3}), random_array({3, 7, 4})}, {Array::from_ints(std::vector<std::int32_t>(21, 1), {3, 7})},
                                {.verbose = 0}));
}

TEST(UnknownDims, ImagesOfAnySizeFlippedResizedCroppedAndInterpolatedAsTheirFixedSizeTwins) {
  // Layers that compute from the image size (flips, resizing, crops, bilinear upsampling, rotations) wait for the
  // data's size; a model built for that size with the same weights is the reference, at two sizes.
  clear_session();
  set_random_seed(9);
  auto build = [](std::int64_t height, std::int64_t width) {
    const Tensor pixels = Input({height, width, 2});
    const Tensor resized = Resizing(6, 5, {.interpolation = "bicubic", .crop_to_aspect_ratio = true})(RandomFlip("horizontal_and_vertical")(pixels));
    const Tensor cropped = CenterCrop(4, 4)(RandomCrop(5, 4)(resized));
    const Tensor grown = UpSampling2D(2, {.interpolation = "bilinear"})(RandomRotation(0.1f)(cropped));
    const Tensor features = Flatten()(Conv2D(3, 3, {.strides = 2})(grown));
    const Tensor detail = GlobalAveragePooling2D()(UpSampling2D(2, {.interpolation = "bilinear"})(pixels));
    auto model = std::make_unique<Model>(pixels, Dense(2)(Concatenate()({features, detail})));
    model->compile(Adam(), "mse");
    return model;
  };
  auto any = build(-1, -1);
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  for (const auto& [h, w] : {std::pair<std::int64_t, std::int64_t>{9, 7}, {5, 12}}) {
    SCOPED_TRACE(fmt::format("{}x{}", h, w));
    std::vector<float> v(std::size_t(3 * h * w * 2));
    for (float& x : v) x = normal(rng);
    const Array images = Array::from_floats(v, {3, h, w, 2});
    auto fixed = build(h, w);
    fixed->set_weights(any->get_weights());
    test::expect_outputs({any->predict(images, {.verbose = 0})}, {fixed->predict(images, {.verbose = 0})}, 1e-6);
    EXPECT_NO_THROW(any->fit(images, Array(Shape{3, 2}, DType::float32), {.epochs = 1, .verbose = 0}));
  }
  EXPECT_EQ(any->get_layer("up_sampling2d_1")->output_shape(), Shape({-1, -1, -1, 2}));  // what summary() shows
}

TEST(UnknownDims, ReshapesKeepUnknownDimensionsInOrder) {
  // (batch, steps, 3) -> (batch, 1, steps, 3) -> (batch * steps, 3) -> back to (batch, steps, 3) by the
  // input's shape, planned at two lengths.
  clear_session();
  const Tensor x = ops::placeholder(Shape{-1, -1, 3});
  const Tensor expanded = ops::expand_dims(x, 1);
  EXPECT_EQ(expanded.shape(), Shape({-1, 1, -1, 3}));
  const Tensor rows = ops::reshape(ops::squeeze(expanded, 1), {-1, 3});
  const Tensor back = ops::reshape_like(ops::multiply(rows, 2.f), {-1, -1, 3}, x);
  EXPECT_EQ(back.shape(), Shape({-1, -1, 3}));
  Program program({x}, {expanded, back});
  for (const std::int64_t steps : {2, 5}) {
    std::vector<float> data(std::size_t(2 * steps * 3));
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = float(i);
    const TensorView feed{data.data(), DType::float32, Shape{2, steps, 3}};
    program.run(Mode::inference, std::span(&feed, 1));
    EXPECT_EQ(program.output_shape(0), Shape({2, 1, steps, 3}));
    EXPECT_EQ(program.output_shape(1), Shape({2, steps, 3}));
    const auto y = program.read_output(1);
    for (std::size_t i = 0; i < data.size(); ++i) ASSERT_EQ(y[i], 2.f * data[i]);
  }
  test::expect_error_containing([&] { ops::reshape(x, {-1, -1, -1}); }, "target (-1, -1, -1) has more -1s than (None, None, 3) has unknown dimensions");
  test::expect_error_containing([&] { ops::reshape(x, {-1, -1, 4}); }, "cannot reshape (None, None, 3) into (-1, -1, 4)");
}

TEST(UnknownDims, WhatNeedsAKnownSizeSaysSo) {
  clear_session();
  // A recurrent layer over unknown steps is traced when the data gives their number: a Model does that, a
  // Program of the symbolic graph cannot.
  const Tensor steps = Input({-1, 3});
  const Tensor last = LSTM(4)(steps);
  EXPECT_EQ(last.shape(), Shape({-1, 4}));
  test::expect_error_containing([&] { Program({steps}, {last}); },
                                "Program: 'lstm' needs the sizes its inputs (None, None, 3) leave unknown to be traced");
  test::expect_error_containing([] { Sequential({Input({0, 3}), LSTM(4)}); }, "LSTM 'lstm_1' needs at least one step, got (None, 0, 3)");
  test::expect_error_containing([] { Input({-2, 3}); }, "must be at least 0, or -1 (unknown)");
  test::expect_error_containing([] { Sequential({Input({-1, -1, 3}), Flatten(), Dense(2)}); },
                                "Flatten 'flatten': dimension 1 of (None, None, None, 3) is unknown");
}

}  // namespace
}  // namespace strata
