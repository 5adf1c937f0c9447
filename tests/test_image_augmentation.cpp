// RandomFlip, RandomContrast and RandomBrightness: their configs and inference outputs against Keras 3
// (scripts/fixtures/keras_image_augmentation.py), what they do while training checked image by image
// against the transformation written out here, and a classifier with the three in front saved by Keras.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "graph/program.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::run;
using test::two_training_runs;

const Json& fixture() {
  static const Json f = test::load_layer_fixture("keras_image_augmentation.json");
  return f;
}

class KerasImageAugmentationReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasImageAugmentationReference, SameConfigAndInferenceOutputAsKeras) {
  const Json& c = fixture()["cases"][std::size_t(GetParam())];
  test::check_keras_layer_case(c);
  // The factor and value range as Keras normalises them (a single contrast factor f is [0, f], a brightness
  // one [-f, f]; brightness sorts its range), the mode and the seed.
  const Json& keras_config = c["layer"]["config"];
  const Json ours = layer_from_json(c["layer"])->get_config();
  for (const char* key : {"factor", "value_range", "mode", "seed", "data_format"}) {
    if (!keras_config.contains(key)) continue;
    ASSERT_TRUE(ours.contains(key)) << key;
    if (keras_config.at(key).is_array()) {  // numbers, which Keras may write as ints
      ASSERT_EQ(ours.at(key).size(), keras_config.at(key).size()) << key;
      for (std::size_t i = 0; i < ours.at(key).size(); ++i)
        EXPECT_NEAR(ours.at(key)[i].get<double>(), keras_config.at(key)[i].get<double>(), 1e-6) << key;
    } else {
      EXPECT_EQ(ours.at(key), keras_config.at(key)) << key;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasImageAugmentationReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_image_augmentation.json")["cases"].size())));


constexpr std::int64_t kImages = 400, kH = 3, kW = 4, kC = 2;
const Shape kShape{kImages, kH, kW, kC};

std::size_t at(std::int64_t b, std::int64_t i, std::int64_t j, std::int64_t c) { return std::size_t(((b * kH + i) * kW + j) * kC + c); }

TEST(RandomFlip, FlipsHalfTheImagesWhileTraining) {
  const auto x = test::random_vector(std::size_t(kShape.numel()), 0, 1, 71);
  for (const std::string mode : {"horizontal", "vertical", "horizontal_and_vertical"}) {
    SCOPED_TRACE(mode);
    clear_session();
    const bool rows = mode != "horizontal", columns = mode != "vertical";
    const auto [y, y2] = two_training_runs(std::make_shared<RandomFlip>(mode), kShape, x);
    int flipped = 0;
    for (std::int64_t b = 0; b < kImages; ++b) {
      bool same = true, mirrored = true;
      for (std::int64_t i = 0; i < kH; ++i)
        for (std::int64_t j = 0; j < kW; ++j)
          for (std::int64_t c = 0; c < kC; ++c) {
            const float v = y[at(b, i, j, c)];
            same = same && v == x[at(b, i, j, c)];
            mirrored = mirrored && v == x[at(b, rows ? kH - 1 - i : i, columns ? kW - 1 - j : j, c)];
          }
      ASSERT_TRUE(same || mirrored) << "image " << b << " is neither itself nor its flip";
      flipped += mirrored;
    }
    EXPECT_NEAR(flipped, kImages / 2, 40) << "400 fair draws: within 4 standard deviations of 200";
    EXPECT_NE(y, y2) << "a fresh draw each step";
    EXPECT_EQ(run([&](const Tensor& t) { return std::make_shared<RandomFlip>(mode)->trace(t); }, kShape, x), x) << "inference";
  }
}

TEST(RandomContrast, ScalesEachImageAboutItsChannelMeans) {
  clear_session();
  const auto x = test::random_vector(std::size_t(kShape.numel()), 0.3f, 0.7f, 72);
  // factor [0.1, 0.3]: f in [0.9, 1.3]; the values stay inside [0, 1], so nothing is clipped.
  const auto [y, y2] = two_training_runs(std::make_shared<RandomContrast>(std::array<float, 2>{0.1f, 0.3f}, std::array<float, 2>{0.f, 1.f}),
                                         kShape, x);
  double lowest = 2, highest = 0;
  for (std::int64_t b = 0; b < kImages; ++b) {
    double f = 0;  // the image's factor, read from its first channel's farthest pixel
    for (std::int64_t c = 0; c < kC; ++c) {
      double mean = 0;
      for (std::int64_t i = 0; i < kH; ++i)
        for (std::int64_t j = 0; j < kW; ++j) mean += x[at(b, i, j, c)] / double(kH * kW);
      if (c == 0) {
        double widest = 0;
        for (std::int64_t i = 0; i < kH; ++i)
          for (std::int64_t j = 0; j < kW; ++j)
            if (std::abs(x[at(b, i, j, c)] - mean) > widest) {
              widest = std::abs(x[at(b, i, j, c)] - mean);
              f = (y[at(b, i, j, c)] - mean) / (x[at(b, i, j, c)] - mean);
            }
      }
      for (std::int64_t i = 0; i < kH; ++i)
        for (std::int64_t j = 0; j < kW; ++j)
          ASSERT_NEAR(y[at(b, i, j, c)], (x[at(b, i, j, c)] - mean) * f + mean, 1e-4) << "image " << b << " channel " << c;
    }
    ASSERT_GE(f, 0.9 - 1e-3);
    ASSERT_LE(f, 1.3 + 1e-3);
    lowest = std::min(lowest, f);
    highest = std::max(highest, f);
  }
  EXPECT_LT(lowest, 0.95);
  EXPECT_GT(highest, 1.25);
  EXPECT_NE(y, y2);
  // Clipped to value_range.
  clear_session();
  const auto [clipped, unused] = two_training_runs(std::make_shared<RandomContrast>(0.5f, std::array<float, 2>{0.4f, 0.6f}), kShape, x);
  for (float v : clipped) ASSERT_TRUE(v >= 0.4f && v <= 0.6f) << v;
}

TEST(RandomBrightness, ShiftsEachImageByAFractionOfTheRange) {
  clear_session();
  const auto x = test::random_vector(std::size_t(kShape.numel()), 0.4f, 0.6f, 73);
  // factor [-0.1, 0.3] of the range's width 2.5: shifts in [-0.25, 0.75], which keep x inside [-1, 1.5].
  const auto [y, y2] = two_training_runs(std::make_shared<RandomBrightness>(std::array<float, 2>{-0.1f, 0.3f}, std::array<float, 2>{-1.f, 1.5f}),
                                         kShape, x);
  const std::int64_t per_image = kH * kW * kC;
  double lowest = 1, highest = -1;
  for (std::int64_t b = 0; b < kImages; ++b) {
    const double d = double(y[std::size_t(b * per_image)]) - x[std::size_t(b * per_image)];
    for (std::int64_t i = 0; i < per_image; ++i)
      ASSERT_NEAR(y[std::size_t(b * per_image + i)], x[std::size_t(b * per_image + i)] + d, 1e-5) << "image " << b;
    ASSERT_GE(d, -0.25 - 1e-5);
    ASSERT_LE(d, 0.75 + 1e-5);
    lowest = std::min(lowest, d);
    highest = std::max(highest, d);
  }
  EXPECT_LT(lowest, -0.2);
  EXPECT_GT(highest, 0.7);
  EXPECT_NE(y, y2);
  // Clipped to value_range, given in either order.
  clear_session();
  const auto [clipped, unused] = two_training_runs(std::make_shared<RandomBrightness>(0.5f, std::array<float, 2>{0.5f, 0.f}), kShape, x);
  for (float v : clipped) ASSERT_TRUE(v >= 0.f && v <= 0.5f) << v;
}

TEST(ImageAugmentation, Errors) {
  clear_session();
  test::expect_error_containing([] { RandomFlip("diagonal"); }, "mode must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got 'diagonal'");
  test::expect_error_containing([] { RandomContrast(1.5f); }, "RandomContrast: factor must be a number in [0, 1] or a pair, got 1.5");
  test::expect_error_containing([] { layer_from_config("RandomBrightness", Json{{"factor", {2, 3}}}); }, "factor (2, 3) must overlap [-1, 1]");
  test::expect_error_containing([] { layer_from_config("RandomBrightness", Json::object()); }, "'factor' is required");
  test::expect_error_containing([] { layer_from_config("RandomContrast", Json{{"factor", "0.2"}}); }, "factor must be a number or a list of two numbers");
  test::expect_error_containing([] { RandomContrast(0.2f, {1.f, 0.f}); }, "value_range must be [low, high] with low < high, got [1, 0]");
  test::expect_error_containing([] { layer_from_config("RandomFlip", Json{{"data_format", "channels_first"}}); }, "channels_first");
  test::expect_error_containing([] { Sequential({Input({4, 5}), RandomFlip()}); }, "expects images (batch, height, width, channels), got (None, 4, 5)");
  test::expect_error_containing([] { Sequential({Input({4}), RandomBrightness(0.1f)}); }, "expects images (batch, height, width, channels), got (None, 4)");
}

TEST(ImageAugmentation, KerasClassifierPredictsAsKerasDid) { test::check_predicts_as_keras_did("aug_classifier"); }
TEST(ImageAugmentation, KerasClassifierSavedFilesRoundTrip) { test::check_saved_files_round_trip("aug_classifier"); }
TEST(ImageAugmentation, KerasLoadsStrataClassifier) { test::check_keras_loads_strata_file("aug_classifier"); }

TEST(ImageAugmentation, KerasClassifierTrainsThroughTheAugmentation) {
  // The gradient reaches the convolution through the flip's gather, the contrast and the brightness.
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "/aug_classifier.keras");
  const Array x = Array::from_floats(test::random_vector(32 * 8 * 8 * 3, 0, 1, 74), {32, 8, 8, 3});
  std::vector<std::int32_t> labels(32);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 3);
  const auto before = model->get_layer(int(model->layers().size()) - 3)->weights()[0]->to_vector();
  const History h = model->fit(x, Array::from_ints(labels, {32}), {.epochs = 2, .batch_size = 8, .verbose = 0});
  for (double loss : h.history.at("loss")) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NE(model->get_layer(int(model->layers().size()) - 3)->weights()[0]->to_vector(), before) << "the Conv2D kernel trained";
}

}  // namespace
}  // namespace strata
