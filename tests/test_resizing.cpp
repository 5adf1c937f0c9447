// Resizing, CenterCrop, RandomCrop, UpSampling2D's resizing interpolations and ops::image::resize: configs
// and outputs against Keras 3 (scripts/fixtures/keras_resizing.py, keras_random_crop.py), against a loop
// reference in double that weighs each output pixel's 2-D neighbourhood directly, and a Keras-saved
// classifier with them in front.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <set>

#include "api/strata.h"
#include "graph/image_ops.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::run;

const Json& fixture() {
  static const Json f = test::load_layer_fixture("keras_resizing.json");
  return f;
}

class KerasResizing : public ::testing::TestWithParam<int> {};

TEST_P(KerasResizing, SameConfigAndOutputAsKeras) {
  const Json& c = fixture()["cases"][std::size_t(GetParam())];
  test::check_keras_layer_case(c);
  const Json& keras_config = c["layer"]["config"];
  const Json ours = layer_from_json(c["layer"])->get_config();
  for (const char* key : {"height", "width", "size", "interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "fill_mode",
                          "fill_value", "antialias", "data_format"}) {
    if (!keras_config.contains(key)) continue;
    SCOPED_TRACE(key);
    ASSERT_TRUE(ours.contains(key));
    if (keras_config.at(key).is_number_float()) {
      EXPECT_NEAR(ours.at(key).get<double>(), keras_config.at(key).get<double>(), 1e-6);
    } else {
      EXPECT_EQ(ours.at(key), keras_config.at(key));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasResizing, ::testing::Range(0, int(test::load_layer_fixture("keras_resizing.json")["cases"].size())));

// The kernels as JAX's image.resize documents them, in double.
double kernel(const std::string& interpolation, double x) {
  if (interpolation == "bilinear") return std::max(0.0, 1 - x);
  if (interpolation == "bicubic") {  // Keys, a = -0.5
    const double a = -0.5;
    if (x < 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
    if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
    return 0;
  }
  const double r = interpolation == "lanczos3" ? 3 : 5;
  if (x > r) return 0;
  if (x < 1e-9) return 1;
  return r * std::sin(M_PI * x) * std::sin(M_PI * x / r) / (M_PI * M_PI * x * x);
}

// Resizes (n, h, w, c) images to (out_h, out_w): each output pixel weighs every input pixel by the kernel of
// its distance to the sample point along each axis (widened by the shrink factor with antialias), divided
// by the weights' sum; nearest reads floor((o + 0.5) * in / out). An axis that keeps its size is left alone.
std::vector<double> reference_resize(const Shape& shape, const std::vector<double>& x, std::int64_t out_h, std::int64_t out_w,
                                     const std::string& interpolation, bool antialias) {
  const std::int64_t n = shape[0], h = shape[1], w = shape[2], ch = shape[3];
  std::vector<double> y(std::size_t(n * out_h * out_w * ch), 0.0);
  for (std::int64_t oy = 0; oy < out_h; ++oy)
    for (std::int64_t ox = 0; ox < out_w; ++ox) {
      std::vector<double> weight(std::size_t(h * w), 0.0);
      double total = 0;
      for (std::int64_t i = 0; i < h; ++i)
        for (std::int64_t j = 0; j < w; ++j) {
          auto along = [&](std::int64_t o, std::int64_t in, std::int64_t out, std::int64_t k) -> double {
            if (in == out) return o == k ? 1 : 0;
            if (interpolation == "nearest") return std::int64_t(std::floor((double(o) + 0.5) * double(in) / double(out))) == k ? 1 : 0;
            const double sample = (double(o) + 0.5) * double(in) / double(out) - 0.5;
            const double widen = antialias ? std::max(1.0, double(in) / double(out)) : 1.0;
            return kernel(interpolation, std::abs(sample - double(k)) / widen);
          };
          total += weight[std::size_t(i * w + j)] = along(oy, h, out_h, i) * along(ox, w, out_w, j);
        }
      for (std::int64_t b = 0; b < n; ++b)
        for (std::int64_t c = 0; c < ch; ++c) {
          double v = 0;
          for (std::int64_t k = 0; k < h * w; ++k) v += weight[std::size_t(k)] * x[std::size_t((b * h * w + k) * ch + c)];
          y[std::size_t(((b * out_h + oy) * out_w + ox) * ch + c)] = v / total;
        }
    }
  return y;
}

std::vector<float> run_resize(const Shape& shape, const std::vector<float>& x, std::int64_t h, std::int64_t w,
                              const ops::image::ResizeOptions& options, Shape* out_shape = nullptr) {
  clear_session();
  return run([&](const Tensor& t) { return ops::image::resize(t, h, w, options); }, shape, x, out_shape);
}

TEST(Resize, MatchesALoopReferenceOverSizesAndKernels) {
  struct Size {
    Shape in;
    std::int64_t h, w;
  };
  const std::vector<Size> sizes{{{2, 4, 3, 2}, 9, 10}, {{2, 7, 9, 2}, 3, 4}, {{1, 8, 5, 1}, 3, 11}, {{1, 1, 6, 2}, 4, 6},
                                {{2, 5, 7, 1}, 1, 2}, {{1, 13, 6, 1}, 5, 6}};
  std::uint32_t seed = 0;
  for (const Size& s : sizes)
    for (const std::string interpolation : {"nearest", "bilinear", "bicubic", "lanczos3", "lanczos5"})
      for (const bool antialias : {false, true}) {
        if (interpolation == "nearest" && antialias) continue;
        SCOPED_TRACE(fmt::format("{} -> ({}, {}) {} antialias {}", s.in.to_string(), s.h, s.w, interpolation, antialias));
        const auto x = test::random_vector(std::size_t(s.in.numel()), -1, 1, 300 + ++seed);
        Shape out_shape;
        const auto y = run_resize(s.in, x, s.h, s.w, {.interpolation = interpolation, .antialias = antialias}, &out_shape);
        EXPECT_EQ(out_shape, (Shape{s.in[0], s.h, s.w, s.in[3]}));
        const auto expected = reference_resize(s.in, std::vector<double>(x.begin(), x.end()), s.h, s.w, interpolation, antialias);
        test::expect_near_all(y, expected, 2e-5, "resize");
      }
}

TEST(Resize, CropsOrPadsToTheAspectRatioFirst) {
  const Shape shape{2, 6, 9, 2};
  const auto x = test::random_vector(std::size_t(shape.numel()), -1, 1, 320);
  auto pixel = [&](std::int64_t b, std::int64_t i, std::int64_t j, std::int64_t c) { return double(x[std::size_t(((b * 6 + i) * 9 + j) * 2 + c)]); };
  {  // to 4 x 4: the centred 6 x 6 window, columns 1 .. 6
    std::vector<double> window;
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t i = 0; i < 6; ++i)
        for (std::int64_t j = 1; j < 7; ++j)
          for (std::int64_t c = 0; c < 2; ++c) window.push_back(pixel(b, i, j, c));
    test::expect_near_all(run_resize(shape, x, 4, 4, {.crop_to_aspect_ratio = true}), reference_resize({2, 6, 6, 2}, window, 4, 4, "bilinear", false),
                          2e-5, "crop");
  }
  {  // to 4 x 3, taller than 6 x 9: rows padded to 12 = 9 * 4 / 3, 3 above and 3 below
    std::vector<double> padded;
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t i = -3; i < 9; ++i)
        for (std::int64_t j = 0; j < 9; ++j)
          for (std::int64_t c = 0; c < 2; ++c) padded.push_back(i >= 0 && i < 6 ? pixel(b, i, j, c) : 0.25);
    test::expect_near_all(run_resize(shape, x, 4, 3, {.pad_to_aspect_ratio = true, .fill_value = 0.25f}),
                          reference_resize({2, 12, 9, 2}, padded, 4, 3, "bilinear", false), 2e-5, "pad");
  }
}

TEST(Resize, Errors) {
  clear_session();
  const Tensor images = ops::placeholder({-1, 4, 5, 3});
  test::expect_error_containing([&] { ops::image::resize(images, 2, 2, {.interpolation = "area"}); },
                                "interpolation must be 'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5', got 'area'");
  test::expect_error_containing([&] { ops::image::resize(images, 0, 2); }, "the size must be positive, got (0, 2)");
  test::expect_error_containing([&] { ops::image::resize(images, 2, 2, {.crop_to_aspect_ratio = true, .pad_to_aspect_ratio = true}); },
                                "only one of crop_to_aspect_ratio and pad_to_aspect_ratio");
  test::expect_error_containing([&] { ops::image::resize(ops::placeholder({-1, 4}), 2, 2); }, "images must be (batch, height, width, channels)");
  test::expect_error_containing([&] { ops::image::resize(ops::placeholder({-1, -1, 5, 3}), 2, 2); }, "needs a known height, width and channels");
}

TEST(Resizing, LayersCheckTheirArguments) {
  clear_session();
  test::expect_error_containing([] { Resizing(0, 4); }, "height and width must be positive, got (0, 4)");
  test::expect_error_containing([] { Resizing(4, 4, {.interpolation = "gaussian"}); }, "interpolation must be 'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5', got 'gaussian'");
  test::expect_error_containing([] { layer_from_config("Resizing", Json{{"height", 4}}); }, "Resizing: 'width' must be given as an integer, got null");
  test::expect_error_containing([] { layer_from_config("Resizing", Json{{"height", 4}, {"width", 4}, {"fill_mode", "reflect"}}); },
                                "fill_mode must be 'constant', got 'reflect'");
  test::expect_error_containing([] { layer_from_config("Resizing", Json{{"height", 4}, {"width", 4}, {"antialias", "yes"}}); },
                                "antialias must be true or false");
  test::expect_error_containing([] { layer_from_config("CenterCrop", Json{{"height", 4}, {"width", 4}, {"data_format", "channels_first"}}); },
                                "channels_first");
  test::expect_error_containing([] { Sequential({Input({4, 5}), CenterCrop(2, 2)}); }, "expects images (batch, height, width, channels), got (None, 4, 5)");
  test::expect_error_containing([] { UpSampling2D(2, {.interpolation = "area"}); }, "interpolation must be 'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5'");
}

// ---- RandomCrop ----

// Coordinate images: channel 0 the pixel's column, channel 1 its row, channel 2 noise.
std::vector<float> coordinate_images(const Shape& shape, std::uint32_t seed) {
  auto x = test::random_vector(std::size_t(shape.numel()), 0, 1, seed);
  for (std::int64_t p = 0; p < shape.numel() / 3; ++p) {
    const std::int64_t j = p % shape[2], i = (p / shape[2]) % shape[1];
    x[std::size_t(3 * p)] = float(j);
    x[std::size_t(3 * p + 1)] = float(i);
  }
  return x;
}

// Checks that `y` holds, for every image, the (height, width) window of `x` at one place shared by the
// batch, inside the image, and returns that place (row, column).
std::array<std::int64_t, 2> check_crop(const Shape& shape, const std::vector<float>& x, std::int64_t height, std::int64_t width,
                                       const std::vector<float>& y) {
  const std::int64_t n = shape[0], h = shape[1], w = shape[2];
  const std::int64_t row = std::int64_t(y[1]), column = std::int64_t(y[0]);
  EXPECT_GE(row, 0);
  EXPECT_GE(column, 0);
  EXPECT_LE(row + height, h);
  EXPECT_LE(column + width, w);
  EXPECT_EQ(y.size(), std::size_t(n * height * width * 3));
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < height; ++i)
      for (std::int64_t j = 0; j < width; ++j)
        for (std::int64_t c = 0; c < 3; ++c) {
          const float got = y[std::size_t(((b * height + i) * width + j) * 3 + c)];
          const float want = x[std::size_t(((b * h + row + i) * w + column + j) * 3 + c)];
          if (got != want) {
            ADD_FAILURE() << "image " << b << " (" << i << ", " << j << ", " << c << ") is not the window at (" << row << ", " << column << ")";
            return {row, column};
          }
        }
  return {row, column};
}

// The centred window of the target's aspect ratio, resized (bilinear): RandomCrop's inference output.
std::vector<double> reference_centre_resize(const Shape& shape, const std::vector<float>& x, std::int64_t height, std::int64_t width) {
  const std::int64_t n = shape[0], h = shape[1], w = shape[2], ch = shape[3];
  const std::int64_t crop_h = std::max<std::int64_t>(1, std::min(h, w * height / width));
  const std::int64_t crop_w = std::max<std::int64_t>(1, std::min(w, h * width / height));
  const std::int64_t top = (h - crop_h) / 2, left = (w - crop_w) / 2;
  std::vector<double> window;
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = top; i < top + crop_h; ++i)
      for (std::int64_t j = left; j < left + crop_w; ++j)
        for (std::int64_t c = 0; c < ch; ++c) window.push_back(x[std::size_t(((b * h + i) * w + j) * ch + c)]);
  return reference_resize({n, crop_h, crop_w, ch}, window, height, width, "bilinear", false);
}

TEST(RandomCrop, KerasConfigsAndKerasTrainingCropsAsStrataCuts) {
  const Json f = test::load_layer_fixture("keras_random_crop.json");
  for (const Json& c : f["cases"]) {
    clear_session();
    const Json& keras_config = c["layer"]["config"];
    const Json ours = layer_from_json(c["layer"])->get_config();
    for (const char* key : {"height", "width", "seed", "data_format", "name"}) EXPECT_EQ(ours.at(key), keras_config.at(key)) << key;
    // Keras cuts one window per batch, as check_crop demands of Strata below.
    const Shape shape = config::shape(c["input_shape"], "input_shape");
    const auto x = c["x"].get<std::vector<float>>();
    for (const Json& y : c["training_y"])
      check_crop(shape, x, keras_config["height"].get<std::int64_t>(), keras_config["width"].get<std::int64_t>(), y.get<std::vector<float>>());
  }
}

TEST(RandomCrop, CutsOneRandomWindowPerBatchWhileTrainingAndResizesInInference) {
  clear_session();
  const Shape shape{3, 6, 9, 3};
  const auto x = coordinate_images(shape, 330);
  const auto outputs = test::training_runs(std::make_shared<RandomCrop>(3, 4), shape, x, 60);
  std::set<std::array<std::int64_t, 2>> places;
  for (const auto& y : outputs) places.insert(check_crop(shape, x, 3, 4, y));
  // 4 x 6 places, 60 draws: each missed with probability (23/24)^60 < 8%; most must be seen, ends included.
  EXPECT_GE(places.size(), 18u);
  std::set<std::int64_t> rows, columns;
  for (const auto& [r, c] : places) rows.insert(r), columns.insert(c);
  EXPECT_EQ(rows, (std::set<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(columns, (std::set<std::int64_t>{0, 1, 2, 3, 4, 5}));
  // Inference: the centred 6 x 8 window (the 3 x 4 aspect ratio) resized to 3 x 4.
  clear_session();
  Shape out_shape;
  const auto y = run([](const Tensor& t) { return RandomCrop(3, 4, 5)(t); }, shape, x, &out_shape);
  EXPECT_EQ(out_shape, (Shape{3, 3, 4, 3}));
  test::expect_near_all(y, reference_centre_resize(shape, x, 3, 4), 2e-5, "inference");
  // An image no larger than the window along an axis is resized while training too.
  clear_session();
  const Shape small{2, 4, 9, 3};
  const auto xs = coordinate_images(small, 331);
  for (const auto& ys : test::training_runs(std::make_shared<RandomCrop>(5, 4), small, xs, 2))
    test::expect_near_all(ys, reference_centre_resize(small, xs, 5, 4), 2e-5, "training on a small image");
}

TEST(RandomCrop, Errors) {
  clear_session();
  test::expect_error_containing([] { RandomCrop(3, -1); }, "RandomCrop 'random_crop': height and width must be positive, got (3, -1)");
  test::expect_error_containing([] { layer_from_config("RandomCrop", Json{{"height", 3}, {"width", 2.5}}); }, "'width' must be given as an integer, got 2.5");
  test::expect_error_containing([] { layer_from_config("RandomCrop", Json{{"height", 3}, {"width", 2}, {"fill_mode", "constant"}}); }, "fill_mode");
  test::expect_error_containing([] { Sequential({Input({6, 9}), RandomCrop(3, 4)}); }, "expects images (batch, height, width, channels), got (None, 6, 9)");
}

TEST(Resizing, KerasClassifierPredictsAsKerasDid) { test::check_predicts_as_keras_did("resize_classifier"); }
TEST(Resizing, KerasClassifierSavedFilesRoundTrip) { test::check_saved_files_round_trip("resize_classifier"); }
TEST(Resizing, KerasLoadsStrataClassifier) { test::check_keras_loads_strata_file("resize_classifier"); }

TEST(Resizing, KerasClassifierTrains) {
  // The gradient passes back through the bicubic upsampling to the convolution.
  clear_session();
  auto model = load_model(test::keras_model_fixtures() + "/resize_classifier.keras");
  const Array x = Array::from_floats(test::random_vector(16 * 10 * 12 * 3, 0, 1, 321), {16, 10, 12, 3});
  std::vector<std::int32_t> labels(16);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 3);
  const auto before = model->get_layer("conv2d")->weights()[0]->to_vector();
  const History h = model->fit(x, Array::from_ints(labels, {16}), {.epochs = 2, .batch_size = 8, .verbose = 0});
  for (double loss : h.history.at("loss")) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NE(model->get_layer("conv2d")->weights()[0]->to_vector(), before);
}

}  // namespace
}  // namespace strata
