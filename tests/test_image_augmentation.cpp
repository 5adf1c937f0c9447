// Keras 3's image augmentation layers: their configs and inference outputs against Keras
// (scripts/fixtures/keras_image_augmentation.py and keras_geometric_augmentation.py), what they do while
// training checked image by image against the transformation written out here (for the resampling layers,
// the same check passes on Keras's own training outputs), ops::image::affine_transform against Keras and a
// loop reference, and classifiers with the layers in front saved by Keras.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <tuple>

#include "api/strata.h"
#include "graph/autodiff.h"
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

// ---- RandomTranslation, RandomRotation and RandomZoom ----

// Images whose channel 0 is the pixel's column, channel 1 its row and the rest noise in [0, 1]: bilinear
// resampling reproduces the two ramps wherever a sample's four neighbours lie inside, so each output image
// tells the transform that made it.
std::vector<float> coordinate_images(const Shape& shape, std::uint32_t seed) {
  auto x = test::random_vector(std::size_t(shape.numel()), 0, 1, seed);
  const std::int64_t n = shape[0], h = shape[1], w = shape[2], ch = shape[3];
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < w; ++j) {
        x[std::size_t(((b * h + i) * w + j) * ch)] = float(j);
        x[std::size_t(((b * h + i) * w + j) * ch + 1)] = float(i);
      }
  return x;
}

// The lower and upper bound Keras draws in for a factor as its config stores it (a number f is [-|f|, |f|]).
std::array<double, 2> factor_bounds(const Json& f) {
  if (f.is_number()) return {-std::abs(f.get<double>()), std::abs(f.get<double>())};
  return {std::min(f[0].get<double>(), f[1].get<double>()), std::max(f[0].get<double>(), f[1].get<double>())};
}

// Checks that `y` is the coordinate images `x` resampled, image by image, through a transform of the layer's
// family (as Keras builds it) with parameters inside the layer's bounds, and that the whole of each image,
// noise included, is what affine_transform gives for it. Returns each image's two parameters: the height's
// and width's fraction (translation), the turns twice (rotation), the height's and width's zoom minus 1.
std::vector<std::array<double, 2>> check_geometric_augmentation(const std::string& class_name, const Json& config, const Shape& shape,
                                                                const std::vector<float>& x, const std::vector<float>& y) {
  const std::int64_t n = shape[0], h = shape[1], w = shape[2], ch = shape[3];
  const std::int64_t ci = h / 2, cj = w / 2;
  const double cx = (double(w) - 1) / 2, cy = (double(h) - 1) / 2, tol = 1e-4;
  auto out = [&](std::int64_t b, std::int64_t i, std::int64_t j, std::int64_t c) { return double(y[std::size_t(((b * h + i) * w + j) * ch + c)]); };
  std::vector<float> transforms;
  std::vector<std::array<double, 2>> parameters;
  for (std::int64_t b = 0; b < n; ++b) {
    SCOPED_TRACE(fmt::format("{} image {}", class_name, b));
    // The input point the centre pixel and its right and lower neighbours read.
    const double a0 = out(b, ci, cj + 1, 0) - out(b, ci, cj, 0), a1 = out(b, ci + 1, cj, 0) - out(b, ci, cj, 0);
    const double b0 = out(b, ci, cj + 1, 1) - out(b, ci, cj, 1), b1 = out(b, ci + 1, cj, 1) - out(b, ci, cj, 1);
    const double a2 = out(b, ci, cj, 0) - a0 * double(cj) - a1 * double(ci), b2 = out(b, ci, cj, 1) - b0 * double(cj) - b1 * double(ci);
    std::array<double, 2> p{};
    std::array<std::array<double, 2>, 2> bounds{};
    if (class_name == "RandomTranslation") {
      EXPECT_NEAR(a0, 1, tol);
      EXPECT_NEAR(a1, 0, tol);
      EXPECT_NEAR(b0, 0, tol);
      EXPECT_NEAR(b1, 1, tol);
      p = {-b2 / double(h), -a2 / double(w)};
      bounds = {factor_bounds(config["height_factor"]), factor_bounds(config["width_factor"])};
    } else if (class_name == "RandomRotation") {
      EXPECT_NEAR(a0, b1, tol);
      EXPECT_NEAR(a1, -b0, tol);
      EXPECT_NEAR(a0 * a0 + b0 * b0, 1, tol);
      EXPECT_NEAR(a0 * cx + a1 * cy + a2, cx, tol) << "turns about the centre";
      EXPECT_NEAR(b0 * cx + b1 * cy + b2, cy, tol);
      const double turns = std::atan2(b0, a0) / (2 * M_PI);
      p = {turns, turns};
      bounds = {factor_bounds(config["factor"]), factor_bounds(config["factor"])};
    } else {
      EXPECT_NEAR(a1, 0, tol);
      EXPECT_NEAR(b0, 0, tol);
      EXPECT_NEAR(a2, (1 - a0) * cx, tol) << "zooms about the centre";
      EXPECT_NEAR(b2, (1 - b1) * cy, tol);
      p = {b1 - 1, a0 - 1};
      const bool shared = config["width_factor"].is_null();
      if (shared) EXPECT_NEAR(a0, b1, tol) << "without a width factor both axes zoom alike";
      bounds = {factor_bounds(config["height_factor"]), factor_bounds(config[shared ? "height_factor" : "width_factor"])};
    }
    for (int k = 0; k < 2; ++k) {
      EXPECT_GE(p[std::size_t(k)], bounds[std::size_t(k)][0] - tol);
      EXPECT_LE(p[std::size_t(k)], bounds[std::size_t(k)][1] + tol);
    }
    parameters.push_back(p);
    for (double v : {a0, a1, a2, b0, b1, b2, 0.0, 0.0}) transforms.push_back(float(v));
  }
  const auto expected = reference_affine_transform(shape, x, transforms, false, config["interpolation"], config["fill_mode"],
                                                   config["fill_value"].get<double>());
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (!expected[i]) continue;
    EXPECT_NEAR(y[i], *expected[i], 5e-4) << class_name << " element " << i;
    if (std::abs(y[i] - *expected[i]) > 5e-4) break;
  }
  return parameters;
}

const Json& geometric_fixture() {
  static const Json f = test::load_layer_fixture("keras_geometric_augmentation.json");
  return f;
}

class KerasGeometricAugmentation : public ::testing::TestWithParam<int> {};

TEST_P(KerasGeometricAugmentation, SameConfigAndInferenceAsKerasAndKerasTrainsThroughTheSameFamily) {
  const Json& c = geometric_fixture()["cases"][std::size_t(GetParam())];
  test::check_keras_layer_case(c);
  const Json& keras_config = c["layer"]["config"];
  const std::string class_name = c["layer"]["class_name"];
  const Json ours = layer_from_json(c["layer"])->get_config();
  for (const char* key : {"factor", "height_factor", "width_factor", "fill_mode", "interpolation", "fill_value", "seed", "data_format"}) {
    if (!keras_config.contains(key)) continue;
    SCOPED_TRACE(key);
    ASSERT_TRUE(ours.contains(key));
    const Json &k = keras_config.at(key), &o = ours.at(key);
    if (k.is_number()) {
      ASSERT_TRUE(o.is_number());
      EXPECT_NEAR(o.get<double>(), k.get<double>(), 1e-6);
    } else if (k.is_array()) {  // as written, unsorted
      ASSERT_EQ(o.size(), k.size());
      for (std::size_t i = 0; i < o.size(); ++i) EXPECT_NEAR(o[i].get<double>(), k[i].get<double>(), 1e-6);
    } else {
      EXPECT_EQ(o, k);
    }
  }
  // Keras's own training outputs belong to the family the layer tests below hold Strata's to.
  if (!c.contains("training_y")) return;
  const Shape shape = config::shape(c["input_shape"], "input_shape");
  const auto x = c["x"].get<std::vector<float>>();
  for (const Json& y : c["training_y"]) check_geometric_augmentation(class_name, keras_config, shape, x, y.get<std::vector<float>>());
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasGeometricAugmentation,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_geometric_augmentation.json")["cases"].size())));

// Trains `layer` twice on 300 coordinate images: every image is resampled through a transform of the family
// within the bounds, the draws spread over the bounds (each within a tenth of its ends), differ between the
// two steps, and inference leaves the images alone.
void check_trains_through_the_family(const std::function<LayerPtr()>& make) {
  clear_session();
  const Shape shape{300, 9, 11, 3};
  const auto x = coordinate_images(shape, 75);
  const LayerPtr layer = make();
  const Json config = layer->get_config();
  const auto [y, y2] = two_training_runs(layer, shape, x);
  const auto p = check_geometric_augmentation(layer->class_name(), config, shape, x, y);
  check_geometric_augmentation(layer->class_name(), config, shape, x, y2);
  EXPECT_NE(y, y2) << "a fresh draw each step";
  const std::array<const char*, 2> keys = layer->class_name() == "RandomRotation" ? std::array{"factor", "factor"}
                                                                                 : std::array{"height_factor", "width_factor"};
  for (std::size_t k = 0; k < 2; ++k) {
    const Json& factor = config[keys[k]].is_null() ? config["height_factor"] : config[keys[k]];
    const auto bounds = factor_bounds(factor);
    double lowest = 1e9, highest = -1e9;
    for (const auto& q : p) lowest = std::min(lowest, q[k]), highest = std::max(highest, q[k]);
    EXPECT_LT(lowest, bounds[0] + 0.1 * (bounds[1] - bounds[0])) << keys[k];
    EXPECT_GT(highest, bounds[1] - 0.1 * (bounds[1] - bounds[0])) << keys[k];
  }
  clear_session();
  EXPECT_EQ(run([&](const Tensor& t) { return make()->trace(t); }, shape, x), x) << "inference";
}

TEST(RandomTranslation, ShiftsEachImageWithinItsFactors) {
  check_trains_through_the_family([] { return std::make_shared<RandomTranslation>(0.2, AugmentationFactor(-0.1, 0.3)); });
  check_trains_through_the_family([] {
    return std::make_shared<RandomTranslation>(AugmentationFactor(0.25, -0.05), 0.1,
                                               GeometricAugmentationOptions{.fill_mode = "constant", .fill_value = 0.5f, .seed = 3});
  });
}

TEST(RandomRotation, TurnsEachImageAboutItsCentreWithinItsFactor) {
  check_trains_through_the_family([] { return std::make_shared<RandomRotation>(0.1); });
  check_trains_through_the_family(
      [] { return std::make_shared<RandomRotation>(AugmentationFactor(-0.2, 0.05), GeometricAugmentationOptions{.fill_mode = "wrap"}); });
}

TEST(RandomZoom, ZoomsEachImageAboutItsCentreWithinItsFactors) {
  check_trains_through_the_family([] { return std::make_shared<RandomZoom>(0.3); });
  check_trains_through_the_family([] {
    return std::make_shared<RandomZoom>(AugmentationFactor(-0.2, 0.1), AugmentationFactor(0.2, 0.4),
                                        GeometricAugmentationOptions{.fill_mode = "nearest"});
  });
}

TEST(GeometricAugmentation, TheGradientReachesTheImages) {
  // d(sum of outputs)/d(input) is the number of samples reading each pixel: nonzero somewhere, zero in
  // inference's identity only where nothing is read.
  clear_session();
  const Shape shape{4, 6, 7, 2};
  const Tensor in = ops::placeholder({-1, 6, 7, 2});
  const Tensor out = RandomRotation(0.2, {.fill_mode = "constant"}).trace(in);
  const Tensor loss = ops::sum(out);
  const auto grads = gradients(loss, {in});
  ASSERT_TRUE(grads[0].valid());
  const auto x = test::random_vector(std::size_t(shape.numel()), 0, 1, 76);
  Program p({in}, {grads[0]}, loss, std::make_shared<SGD>(SGDOptions{.learning_rate = 0.f}));
  const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
  p.run(Mode::training, std::span(&feed, 1));
  const auto g = p.read_output(0);
  double total = 0;
  for (float v : g) total += v;
  // Each output sample's bilinear weights sum to 1; those falling outside the image go to the fill.
  EXPECT_GT(total, 0.5 * double(shape.numel()));
  EXPECT_LE(total, double(shape.numel()) + 1e-3);
}

TEST(GeometricAugmentation, Errors) {
  clear_session();
  test::expect_error_containing([] { RandomTranslation(1.5, 0.1); }, "RandomTranslation: height_factor must be a number or a pair of numbers in [-1, 1], got 1.5");
  test::expect_error_containing([] { RandomZoom(0.2, AugmentationFactor(-1.0, 0.2)); }, "RandomZoom: width_factor must be a number or a pair of numbers in (-1, 1], got -1");
  test::expect_error_containing([] { RandomRotation(0.1, {.fill_mode = "mirror"}); }, "fill_mode must be 'reflect', 'wrap', 'constant' or 'nearest', got 'mirror'");
  test::expect_error_containing([] { RandomZoom(0.1, std::nullopt, {.interpolation = "bicubic"}); }, "interpolation must be 'bilinear' or 'nearest', got 'bicubic'");
  test::expect_error_containing([] { layer_from_config("RandomTranslation", Json{{"height_factor", 0.1}}); }, "RandomTranslation: 'width_factor' is required");
  test::expect_error_containing([] { layer_from_config("RandomRotation", Json{{"factor", {0.1, 0.2, 0.3}}}); }, "factor must be a number or a list of two numbers");
  test::expect_error_containing([] { layer_from_config("RandomZoom", Json{{"height_factor", 0.1}, {"fill_mode", 3}}); }, "RandomZoom: fill_mode must be a string, got 3");
  test::expect_error_containing([] { layer_from_config("RandomRotation", Json{{"factor", 0.1}, {"value_range", {0, 1}}}); }, "value_range");
  test::expect_error_containing([] { layer_from_config("RandomZoom", Json{{"height_factor", 0.1}, {"data_format", "channels_first"}}); }, "channels_first");
  test::expect_error_containing([] { Sequential({Input({4, 5}), RandomRotation(0.1)}); }, "expects images (batch, height, width, channels), got (None, 4, 5)");
  // Images of any size: the call waits for the data's size (a Model traces it again then).
  const Tensor any_size = RandomZoom(0.1).trace(ops::placeholder({-1, -1, -1, 3}));
  EXPECT_EQ(any_size.shape(), Shape({-1, -1, -1, 3}));
  EXPECT_EQ(any_size.graph().node(any_size.graph().value(any_size.id()).producer).kind, OpKind::deferred);
}

TEST(GeometricAugmentation, KerasClassifierPredictsAsKerasDid) { test::check_predicts_as_keras_did("geo_aug_classifier"); }
TEST(GeometricAugmentation, KerasClassifierSavedFilesRoundTrip) { test::check_saved_files_round_trip("geo_aug_classifier"); }
TEST(GeometricAugmentation, KerasLoadsStrataClassifier) { test::check_keras_loads_strata_file("geo_aug_classifier"); }

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
