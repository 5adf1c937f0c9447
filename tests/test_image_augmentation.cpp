// RandomFlip, RandomContrast and RandomBrightness: their configs and inference outputs against Keras 3
// (scripts/fixtures/keras_image_augmentation.py), what they do while training checked image by image
// against the transformation written out here, and a classifier with the three in front saved by Keras.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

#include "api/strata.h"
#include "graph/image_ops.h"
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

// ---- ops::image::affine_transform ----

// Runs affine_transform on images (batch symbolic) and a transform of shape `transform_shape` fed beside them.
std::vector<float> run_affine_transform(const Shape& shape, const std::vector<float>& images, const Shape& transform_shape,
                                        const std::vector<float>& transform, const std::string& interpolation,
                                        const std::string& fill_mode, float fill_value) {
  clear_session();
  Shape symbolic = shape;
  symbolic[0] = -1;
  const Tensor in = ops::placeholder(symbolic, DType::float32, "images");
  const Tensor t = ops::placeholder(transform_shape, DType::float32, "transform");
  Program p({in, t}, {ops::image::affine_transform(in, t, interpolation, fill_mode, fill_value)});
  const std::vector<TensorView> feeds{{const_cast<float*>(images.data()), DType::float32, shape},
                                      {const_cast<float*>(transform.data()), DType::float32, transform_shape}};
  p.run(Mode::inference, feeds);
  EXPECT_EQ(p.output_shape(0), shape);
  return p.read_output(0);
}

class KerasAffineTransform : public ::testing::TestWithParam<int> {};

TEST_P(KerasAffineTransform, ResamplesAsKeras) {
  static const Json cases = test::load_layer_fixture("keras_affine_transform.json")["cases"];
  const Json& c = cases[std::size_t(GetParam())];
  const std::string interpolation = c["interpolation"], fill_mode = c["fill_mode"];
  SCOPED_TRACE(interpolation + " " + fill_mode);
  const Shape shape(c["shape"].get<std::vector<std::int64_t>>());
  const auto y = run_affine_transform(shape, c["images"].get<std::vector<float>>(), Shape{shape[0], 8},
                                      c["transform"].get<std::vector<float>>(), interpolation, fill_mode, c["fill_value"].get<float>());
  test::expect_near_all(y, test::doubles(c["y"]), 1e-5, "affine_transform");
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasAffineTransform,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_affine_transform.json")["cases"].size())));

// The sample at one integer index along an axis of `size` pixels under fill_mode, written as the pattern
// each mode repeats (-1 for a constant fill outside the image).
std::int64_t reference_index(std::int64_t i, std::int64_t size, const std::string& fill_mode) {
  auto positive_mod = [](std::int64_t a, std::int64_t m) { return ((a % m) + m) % m; };
  if (fill_mode == "constant") return i >= 0 && i < size ? i : -1;
  if (fill_mode == "nearest") return std::clamp<std::int64_t>(i, 0, size - 1);
  if (fill_mode == "wrap") return positive_mod(i, size);
  if (fill_mode == "reflect") {  // period 2n: 0 .. n-1 then n-1 .. 0
    const std::int64_t m = positive_mod(i, 2 * size);
    return m < size ? m : 2 * size - 1 - m;
  }
  if (size == 1) return 0;  // mirror: period 2(n-1): 0 .. n-1 then n-2 .. 1
  const std::int64_t m = positive_mod(i, 2 * (size - 1));
  return m < size ? m : 2 * (size - 1) - m;
}

// keras.ops.image.affine_transform in double with loops; nullopt where a nearest sample lies within 1e-3 of
// a rounding tie, which float coordinates may break either way.
std::vector<std::optional<double>> reference_affine_transform(const Shape& shape, const std::vector<float>& images,
                                                              const std::vector<float>& transform, bool one_transform,
                                                              const std::string& interpolation, const std::string& fill_mode,
                                                              double fill_value) {
  const std::int64_t n = shape[0], h = shape[1], w = shape[2], ch = shape[3];
  std::vector<std::optional<double>> out(std::size_t(shape.numel()));
  for (std::int64_t b = 0; b < n; ++b) {
    const float* t = transform.data() + (one_transform ? 0 : 8 * b);
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        const double k = double(t[6]) * x + double(t[7]) * y + 1;
        const double sx = (double(t[0]) * x + double(t[1]) * y + t[2]) / k, sy = (double(t[3]) * x + double(t[4]) * y + t[5]) / k;
        std::vector<std::tuple<std::int64_t, std::int64_t, double>> taps;  // (row, column, weight)
        if (interpolation == "nearest") {
          auto near_tie = [](double v) { return std::abs(std::abs(v - std::trunc(v)) - 0.5) < 1e-3; };
          if (near_tie(sx) || near_tie(sy)) continue;
          taps.emplace_back(std::llround(sy), std::llround(sx), 1.0);
        } else {
          const double fy = std::floor(sy), fx = std::floor(sx), dy = sy - fy, dx = sx - fx;
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j)
              taps.emplace_back(std::int64_t(fy) + i, std::int64_t(fx) + j, (i ? dy : 1 - dy) * (j ? dx : 1 - dx));
        }
        for (std::int64_t c = 0; c < ch; ++c) {
          double v = 0;
          for (const auto& [row, column, weight] : taps) {
            const std::int64_t r = reference_index(row, h, fill_mode), q = reference_index(column, w, fill_mode);
            v += weight * (r < 0 || q < 0 ? fill_value : double(images[std::size_t(((b * h + r) * w + q) * ch + c)]));
          }
          out[std::size_t(((b * h + y) * w + x) * ch + c)] = v;
        }
      }
  }
  return out;
}

TEST(AffineTransform, MatchesALoopReferenceOverShapesModesAndProjections) {
  // Projective rows (c0, c1 != 0), one transform for all images, and images of one pixel along an axis.
  const std::vector<Shape> shapes{{2, 7, 4, 3}, {3, 1, 5, 1}, {2, 6, 1, 2}};
  int seed = 0;
  for (const Shape& shape : shapes)
    for (const bool one_transform : {false, true})
      for (const std::string interpolation : {"bilinear", "nearest"})
        for (const std::string fill_mode : {"constant", "nearest", "wrap", "mirror", "reflect"}) {
          SCOPED_TRACE(fmt::format("{} {} {} {}", shape.to_string(), one_transform, interpolation, fill_mode));
          ++seed;
          const auto images = test::random_vector(std::size_t(shape.numel()), -1, 1, std::uint32_t(100 + seed));
          const std::int64_t rows = one_transform ? 1 : shape[0];
          auto transform = test::random_vector(std::size_t(8 * rows), -1.5f, 1.5f, std::uint32_t(200 + seed));
          for (std::int64_t r = 0; r < rows; ++r) {
            transform[std::size_t(8 * r + 2)] *= 3 * float(shape[2]);  // translations reaching past the image
            transform[std::size_t(8 * r + 5)] *= 3 * float(shape[1]);
            transform[std::size_t(8 * r + 6)] *= 0.05f;  // keeps k = c0 x + c1 y + 1 away from 0
            transform[std::size_t(8 * r + 7)] *= 0.05f;
          }
          const Shape transform_shape = one_transform ? Shape{8} : Shape{rows, 8};
          const float fill_value = fill_mode == "constant" ? 0.25f : 0.f;
          const auto y = run_affine_transform(shape, images, transform_shape, transform, interpolation, fill_mode, fill_value);
          const auto expected = reference_affine_transform(shape, images, transform, one_transform, interpolation, fill_mode, fill_value);
          int compared = 0;
          for (std::size_t i = 0; i < y.size(); ++i) {
            if (!expected[i]) continue;
            ++compared;
            ASSERT_NEAR(y[i], *expected[i], 2e-5 + 2e-5 * std::abs(*expected[i])) << "element " << i;
          }
          EXPECT_GT(compared, int(y.size()) / 2);
        }
}

TEST(AffineTransform, IdentityAndIntegerShiftsMovePixelsExactly) {
  const Shape shape{2, 4, 5, 3};
  const auto images = test::random_vector(std::size_t(shape.numel()), -1, 1, 91);
  const std::vector<float> identity{1, 0, 0, 0, 1, 0, 0, 0};
  for (const std::string interpolation : {"bilinear", "nearest"})
    EXPECT_EQ(run_affine_transform(shape, images, Shape{8}, identity, interpolation, "constant", 0.f), images) << interpolation;
  // Output (y, x) reads input (y - 1, x + 2): with "wrap" every pixel moves, none is lost.
  const auto shifted = run_affine_transform(shape, images, Shape{8}, {1, 0, 2, 0, 1, -1, 0, 0}, "bilinear", "wrap", 0.f);
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t y = 0; y < 4; ++y)
      for (std::int64_t x = 0; x < 5; ++x)
        for (std::int64_t c = 0; c < 3; ++c)
          ASSERT_EQ(shifted[std::size_t(((b * 4 + y) * 5 + x) * 3 + c)], images[std::size_t(((b * 4 + (y + 3) % 4) * 5 + (x + 2) % 5) * 3 + c)]);
}

TEST(AffineTransform, Errors) {
  clear_session();
  const Tensor images = ops::placeholder({-1, 4, 5, 3});
  const Tensor t = ops::placeholder({-1, 8});
  test::expect_error_containing([&] { ops::image::affine_transform(images, t, "bicubic"); }, "interpolation must be 'bilinear' or 'nearest', got 'bicubic'");
  test::expect_error_containing([&] { ops::image::affine_transform(images, t, "bilinear", "edge"); },
                                "fill_mode must be one of constant, nearest, wrap, mirror, reflect, got 'edge'");
  test::expect_error_containing([&] { ops::image::affine_transform(ops::placeholder({-1, 4}), t); }, "images must be (batch, height, width, channels)");
  test::expect_error_containing([&] { ops::image::affine_transform(images, ops::placeholder({-1, 6})); }, "transform must be float32 (8) or (batch, 8), got (None, 6)");
  test::expect_error_containing([&] { ops::image::affine_transform(ops::placeholder({2, 4, 5, 3}), ops::placeholder({3, 8})); }, "3 transforms for 2 images");
  test::expect_error_containing([&] { ops::image::affine_transform(ops::placeholder({-1, -1, 5, 3}), t); }, "needs a known height, width and channels");
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
