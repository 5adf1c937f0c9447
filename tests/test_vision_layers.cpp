// Vision layers beyond Conv/Pool: depthwise, separable and transposed convolutions, BatchNormalization,
// padding, cropping, upsampling and spatial dropout. Each against a loop reference in double written from
// the layer's definition, and against outputs recorded from Keras 3 (scripts/fixtures/keras_vision_layers.py)
// for configs as Keras writes them, read through the layer registry.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/strata.h"
#include "graph/program.h"
#include "keras_layer_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_near_all;
using test::run;

class KerasVisionReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasVisionReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_vision_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasVisionReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_vision_layers.json")["cases"].size())));

// ---- loop references ----

// TensorFlow's "same" padding before the data: out = ceil(in / stride).
int same_pad_before(int in, int k, int stride, int dilation) {
  const int out = (in + stride - 1) / stride;
  return std::max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0) / 2;
}

TEST(VisionLayers, DepthwiseAndSeparableMatchLoops) {
  struct Case { int h, w, c, mult, kh, kw, s, d; bool same; };
  for (const Case& k : {Case{7, 6, 3, 2, 3, 3, 1, 1, true}, Case{8, 7, 2, 1, 3, 2, 2, 1, false}, Case{9, 9, 2, 3, 2, 2, 1, 2, true}}) {
    SCOPED_TRACE(::testing::Message() << "h=" << k.h << " c=" << k.c << " mult=" << k.mult << " s=" << k.s << " d=" << k.d << " same=" << k.same);
    clear_session();
    const int n = 2, filters = 4;
    const int oh = k.same ? (k.h + k.s - 1) / k.s : (k.h - (k.kh - 1) * k.d - 1) / k.s + 1;
    const int ow = k.same ? (k.w + k.s - 1) / k.s : (k.w - (k.kw - 1) * k.d - 1) / k.s + 1;
    const int pt = k.same ? same_pad_before(k.h, k.kh, k.s, k.d) : 0, pl = k.same ? same_pad_before(k.w, k.kw, k.s, k.d) : 0;
    const auto x = test::random_vector(std::size_t(n * k.h * k.w * k.c), -1, 1, 11);
    const auto dk = test::random_vector(std::size_t(k.kh * k.kw * k.c * k.mult), -1, 1, 12);
    const auto pk = test::random_vector(std::size_t(k.c * k.mult * filters), -1, 1, 13);
    const auto bias = test::random_vector(std::size_t(k.c * k.mult), -1, 1, 14);
    // depthwise[b, oy, ox, c * mult + m] = bias + sum x[b, iy, ix, c] * dk[ky, kx, c, m]
    std::vector<double> depthwise(std::size_t(n * oh * ow * k.c * k.mult));
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox)
          for (int c = 0; c < k.c; ++c)
            for (int m = 0; m < k.mult; ++m) {
              double acc = 0;
              for (int ky = 0; ky < k.kh; ++ky)
                for (int kx = 0; kx < k.kw; ++kx) {
                  const int iy = oy * k.s + ky * k.d - pt, ix = ox * k.s + kx * k.d - pl;
                  if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                  acc += double(x[std::size_t(((b * k.h + iy) * k.w + ix) * k.c + c)]) * dk[std::size_t(((ky * k.kw + kx) * k.c + c) * k.mult + m)];
                }
              depthwise[std::size_t(((b * oh + oy) * ow + ox) * k.c * k.mult + c * k.mult + m)] = acc;
            }
    const Shape in_shape{n, k.h, k.w, k.c};
    const std::string padding = k.same ? "same" : "valid";
    auto dw = std::make_shared<DepthwiseConv2D>(IntTuple{k.kh, k.kw}, DepthwiseConvOptions{.strides = k.s, .padding = padding,
                                                                                            .depth_multiplier = k.mult, .dilation_rate = k.d});
    (void)run([&](const Tensor& t) { return dw->trace(t); }, in_shape, x);
    ASSERT_EQ(dw->kernel()->shape(), (Shape{k.kh, k.kw, k.c, k.mult}));
    dw->kernel()->assign(dk);
    dw->bias()->assign(bias);
    std::vector<double> expected = depthwise;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += bias[i % bias.size()];
    expect_near_all(run([&](const Tensor& t) { return dw->trace(t); }, in_shape, x), expected, 1e-5, "DepthwiseConv2D");

    auto sep = std::make_shared<SeparableConv2D>(filters, IntTuple{k.kh, k.kw},
                                                 SeparableConvOptions{.strides = k.s, .padding = padding, .depth_multiplier = k.mult,
                                                                      .dilation_rate = k.d, .use_bias = false});
    (void)run([&](const Tensor& t) { return sep->trace(t); }, in_shape, x);
    ASSERT_EQ(sep->weights().size(), 2u);
    ASSERT_EQ(sep->weights()[1]->shape(), (Shape{1, 1, k.c * k.mult, filters}));
    sep->weights()[0]->assign(dk);
    sep->weights()[1]->assign(pk);
    std::vector<double> pointwise(std::size_t(n * oh * ow * filters));
    for (std::size_t p = 0; p < std::size_t(n * oh * ow); ++p)
      for (int f = 0; f < filters; ++f)
        for (int j = 0; j < k.c * k.mult; ++j) pointwise[p * filters + std::size_t(f)] += depthwise[p * std::size_t(k.c * k.mult) + std::size_t(j)] * pk[std::size_t(j * filters + f)];
    expect_near_all(run([&](const Tensor& t) { return sep->trace(t); }, in_shape, x), pointwise, 1e-5, "SeparableConv2D");
  }
}

// Conv2DTranspose by TensorFlow's definition: the adjoint of the convolution of the (larger) output, with
// that convolution's padding computed from the output size by the "same" rule.
TEST(VisionLayers, Conv2DTransposeMatchesLoops) {
  struct Case { int h, w, cin, filters, kh, kw, s, d; bool same; int output_padding; };
  for (const Case& k : {Case{4, 5, 2, 3, 3, 3, 2, 1, true, -1}, Case{3, 4, 3, 2, 3, 2, 2, 1, false, -1}, Case{3, 3, 2, 2, 3, 3, 2, 1, false, 1},
                        Case{4, 4, 1, 2, 3, 3, 1, 2, false, -1}, Case{3, 3, 2, 3, 2, 2, 3, 1, true, -1}, Case{3, 4, 2, 2, 4, 4, 3, 1, true, 2}}) {
    SCOPED_TRACE(::testing::Message() << "h=" << k.h << " k=" << k.kh << "x" << k.kw << " s=" << k.s << " d=" << k.d << " same=" << k.same
                                      << " output_padding=" << k.output_padding);
    clear_session();
    const int n = 2;
    auto size = [&](int in, int kernel) {
      const int span = (kernel - 1) * k.d + 1;
      if (k.same) return k.output_padding >= 0 ? (in - 1) * k.s + span % 2 + k.output_padding : in * k.s;
      return (in - 1) * k.s + span + (k.output_padding >= 0 ? k.output_padding : std::max(span, k.s) - span);
    };
    const int oh = size(k.h, k.kh), ow = size(k.w, k.kw);
    // Padding of the forward convolution output -> input: "same" by TensorFlow's rule on the output size.
    auto pad_before = [&](int out, int in, int kernel) {
      if (!k.same) return 0;
      return std::max((in - 1) * k.s + (kernel - 1) * k.d + 1 - out, 0) / 2;
    };
    const int pt = pad_before(oh, k.h, k.kh), pl = pad_before(ow, k.w, k.kw);
    const auto x = test::random_vector(std::size_t(n * k.h * k.w * k.cin), -1, 1, 21);
    const auto kernel = test::random_vector(std::size_t(k.kh * k.kw * k.filters * k.cin), -1, 1, 22);
    std::vector<double> expected(std::size_t(n * oh * ow * k.filters));
    for (int b = 0; b < n; ++b)
      for (int iy = 0; iy < k.h; ++iy)
        for (int ix = 0; ix < k.w; ++ix)
          for (int ky = 0; ky < k.kh; ++ky)
            for (int kx = 0; kx < k.kw; ++kx) {
              const int oy = iy * k.s - pt + ky * k.d, ox = ix * k.s - pl + kx * k.d;
              if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
              for (int f = 0; f < k.filters; ++f)
                for (int c = 0; c < k.cin; ++c)
                  expected[std::size_t(((b * oh + oy) * ow + ox) * k.filters + f)] +=
                      double(x[std::size_t(((b * k.h + iy) * k.w + ix) * k.cin + c)]) * kernel[std::size_t(((ky * k.kw + kx) * k.filters + f) * k.cin + c)];
            }
    ConvTransposeOptions o{.strides = k.s, .padding = k.same ? "same" : "valid", .dilation_rate = k.d, .use_bias = false};
    if (k.output_padding >= 0) o.output_padding = k.output_padding;
    auto layer = std::make_shared<Conv2DTranspose>(k.filters, IntTuple{k.kh, k.kw}, o);
    const Shape in_shape{n, k.h, k.w, k.cin};
    (void)run([&](const Tensor& t) { return layer->trace(t); }, in_shape, x);
    ASSERT_EQ(layer->kernel()->shape(), (Shape{k.kh, k.kw, k.filters, k.cin}));
    layer->kernel()->assign(kernel);
    Shape out_shape;
    const auto y = run([&](const Tensor& t) { return layer->trace(t); }, in_shape, x, &out_shape);
    ASSERT_EQ(out_shape, (Shape{n, oh, ow, k.filters}));
    expect_near_all(y, expected, 1e-5, "Conv2DTranspose");
  }
}

TEST(VisionLayers, BatchNormalizationTrainsAndInfersAsDefined) {
  clear_session();
  const int n = 4, h = 3, w = 2, c = 3;
  const auto x = test::random_vector(std::size_t(n * h * w * c), -2, 3, 31);
  const std::vector<float> gamma{1.5f, -0.5f, 2.f}, beta{0.1f, 0.2f, -0.3f}, mean{0.5f, -1.f, 0.f}, var{2.f, 0.5f, 1.f};
  auto bn = std::make_shared<BatchNormalization>();
  const Shape shape{n, h, w, c};
  (void)run([&](const Tensor& t) { return bn->trace(t); }, shape, x);
  ASSERT_EQ(bn->weights().size(), 4u);
  EXPECT_EQ(bn->weights()[2]->name(), bn->name() + "/moving_mean");
  EXPECT_EQ(bn->trainable_weights().size(), 2u);
  EXPECT_EQ(bn->count_params(), 12);
  bn->gamma()->assign(gamma);
  bn->beta()->assign(beta);
  bn->moving_mean()->assign(mean);
  bn->moving_variance()->assign(var);
  const double eps = 1e-3;
  std::vector<double> inference(x.size()), training(x.size());
  std::vector<double> batch_mean(c), batch_var(c);
  for (std::size_t i = 0; i < x.size(); ++i) batch_mean[i % c] += x[i] / double(n * h * w);
  for (std::size_t i = 0; i < x.size(); ++i) batch_var[i % c] += std::pow(x[i] - batch_mean[i % c], 2) / double(n * h * w);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t f = i % c;
    inference[i] = (x[i] - mean[f]) / std::sqrt(var[f] + eps) * gamma[f] + beta[f];
    training[i] = (x[i] - batch_mean[f]) / std::sqrt(batch_var[f] + eps) * gamma[f] + beta[f];
  }
  expect_near_all(run([&](const Tensor& t) { return bn->trace(t); }, shape, x), inference, 1e-5, "inference");
  expect_near_all(run([&](const Tensor& t) { return bn->trace(t); }, shape, x, nullptr, Mode::training), training, 1e-5, "training");
  std::vector<double> new_mean(c), new_var(c);
  for (int f = 0; f < c; ++f) {
    new_mean[std::size_t(f)] = 0.99 * mean[std::size_t(f)] + 0.01 * batch_mean[std::size_t(f)];
    new_var[std::size_t(f)] = 0.99 * var[std::size_t(f)] + 0.01 * batch_var[std::size_t(f)];  // biased batch variance
  }
  expect_near_all(bn->moving_mean()->to_vector(), new_mean, 1e-6, "moving_mean");
  expect_near_all(bn->moving_variance()->to_vector(), new_var, 1e-6, "moving_variance");
  // Inference leaves the statistics alone.
  (void)run([&](const Tensor& t) { return bn->trace(t); }, shape, x);
  expect_near_all(bn->moving_mean()->to_vector(), new_mean, 1e-6, "moving_mean after inference");

  // Frozen: inference arithmetic while training, and the statistics stay.
  bn->set_trainable(false);
  std::vector<double> frozen(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t f = i % c;
    frozen[i] = (x[i] - new_mean[f]) / std::sqrt(new_var[f] + eps) * gamma[f] + beta[f];
  }
  expect_near_all(run([&](const Tensor& t) { return bn->trace(t); }, shape, x, nullptr, Mode::training), frozen, 1e-5, "frozen");
  expect_near_all(bn->moving_mean()->to_vector(), new_mean, 1e-6, "moving_mean when frozen");
  EXPECT_EQ(bn->trainable_weights().size(), 0u);
}

TEST(VisionLayers, PaddingCroppingAndUpsamplingMatchLoops) {
  clear_session();
  const int n = 2, h = 3, w = 4, c = 2;
  const Shape shape{n, h, w, c};
  const auto x = test::random_vector(std::size_t(n * h * w * c), -1, 1, 41);
  auto at = [&](int b, int y, int xx, int ch) { return double(x[std::size_t(((b * h + y) * w + xx) * c + ch)]); };
  Shape s;
  {  // ZeroPadding2D(((1, 2), (3, 0)))
    const auto y = run([](const Tensor& t) { return ZeroPadding2D({{1, 2}, {3, 0}})(t); }, shape, x, &s);
    ASSERT_EQ(s, (Shape{n, h + 3, w + 3, c}));
    std::vector<double> e;
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < h + 3; ++i)
        for (int j = 0; j < w + 3; ++j)
          for (int ch = 0; ch < c; ++ch) e.push_back(i >= 1 && i < h + 1 && j >= 3 ? at(b, i - 1, j - 3, ch) : 0.0);
    expect_near_all(y, e, 0, "ZeroPadding2D");
  }
  {  // Cropping2D((1, 1)): one row top and bottom, one column left and right
    const auto y = run([](const Tensor& t) { return Cropping2D({1, 1})(t); }, shape, x, &s);
    ASSERT_EQ(s, (Shape{n, h - 2, w - 2, c}));
    std::vector<double> e;
    for (int b = 0; b < n; ++b)
      for (int i = 1; i < h - 1; ++i)
        for (int j = 1; j < w - 1; ++j)
          for (int ch = 0; ch < c; ++ch) e.push_back(at(b, i, j, ch));
    expect_near_all(y, e, 0, "Cropping2D");
  }
  {  // UpSampling2D((2, 3)) nearest
    const auto y = run([](const Tensor& t) { return UpSampling2D({2, 3})(t); }, shape, x, &s);
    ASSERT_EQ(s, (Shape{n, 2 * h, 3 * w, c}));
    std::vector<double> e;
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < 2 * h; ++i)
        for (int j = 0; j < 3 * w; ++j)
          for (int ch = 0; ch < c; ++ch) e.push_back(at(b, i / 2, j / 3, ch));
    expect_near_all(y, e, 0, "UpSampling2D nearest");
  }
  {  // UpSampling2D(2, bilinear): half-pixel centres, clamped at the edges
    const auto y = run([](const Tensor& t) { return UpSampling2D(2, {.interpolation = "bilinear"})(t); }, shape, x, &s);
    ASSERT_EQ(s, (Shape{n, 2 * h, 2 * w, c}));
    auto sample = [](int o, int in, int& i0, int& i1, double& f) {
      const double src = (o + 0.5) / 2 - 0.5;
      f = src - std::floor(src);
      i0 = std::clamp(int(std::floor(src)), 0, in - 1);
      i1 = std::clamp(int(std::floor(src)) + 1, 0, in - 1);
    };
    std::vector<double> e;
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < 2 * h; ++i)
        for (int j = 0; j < 2 * w; ++j)
          for (int ch = 0; ch < c; ++ch) {
            int y0, y1, x0, x1;
            double fy, fx;
            sample(i, h, y0, y1, fy);
            sample(j, w, x0, x1, fx);
            e.push_back((1 - fy) * ((1 - fx) * at(b, y0, x0, ch) + fx * at(b, y0, x1, ch)) +
                        fy * ((1 - fx) * at(b, y1, x0, ch) + fx * at(b, y1, x1, ch)));
          }
    expect_near_all(y, e, 1e-6, "UpSampling2D bilinear");
  }
}

TEST(VisionLayers, SpatialDropoutDropsWholeChannels) {
  // SpatialDropout2D over (h, w) and SpatialDropout3D over (d, h, w): one draw per sample and channel.
  for (const int rank : {2, 3}) {
    SCOPED_TRACE(rank);
    clear_session();
    const int n = 8, c = 16, positions = rank == 2 ? 9 : 12;
    const Shape shape = rank == 2 ? Shape{n, 3, 3, c} : Shape{n, 2, 3, 2, c};
    const std::vector<float> x(std::size_t(n * positions * c), 1.f);
    LayerPtr drop = rank == 2 ? LayerPtr(std::make_shared<SpatialDropout2D>(0.5f, DropoutOptions{.seed = 7}))
                              : LayerPtr(std::make_shared<SpatialDropout3D>(0.5f, DropoutOptions{.seed = 7}));
    const auto inference = run([&](const Tensor& t) { return (*drop)(t); }, shape, x);
    EXPECT_EQ(inference, x);
    const auto y = run([&](const Tensor& t) { return drop->trace(t); }, shape, x, nullptr, Mode::training);
    int dropped = 0;
    for (int b = 0; b < n; ++b)
      for (int ch = 0; ch < c; ++ch) {
        const float first = y[std::size_t(b * positions * c + ch)];
        ASSERT_TRUE(first == 0.f || first == 2.f) << first;
        dropped += first == 0.f;
        for (int p = 0; p < positions; ++p) ASSERT_EQ(y[std::size_t((b * positions + p) * c + ch)], first) << "sample " << b << " channel " << ch;
      }
    EXPECT_GT(dropped, n * c / 4);
    EXPECT_LT(dropped, 3 * n * c / 4);
    EXPECT_EQ(drop->get_config()["data_format"], "channels_last");
  }
  test::expect_error_containing([] { Sequential({Input({3, 3, 2}), SpatialDropout3D(0.5f)}); }, "SpatialDropout3D expects inputs of rank 5");
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(VisionLayers, FrozenBatchNormalizationStopsUpdatingAfterCompile) {
  clear_session();
  set_random_seed(3);
  auto bn = std::make_shared<BatchNormalization>();
  Sequential model({Input({4, 4, 2}), Conv2D(3, 3, {.padding = "same"}), bn, Flatten(), Dense(2, {.activation = "softmax"})});
  const auto xs = test::random_vector(32 * 4 * 4 * 2, -1, 1, 51);
  std::vector<std::int32_t> labels(32);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 2);
  const Array x = Array::from_floats(xs, {32, 4, 4, 2}), y = Array::from_ints(labels, {32});
  model.compile(SGD(SGDOptions{.learning_rate = 0.1}), "sparse_categorical_crossentropy");
  model.fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  const auto mean = bn->moving_mean()->to_vector(), gamma = bn->gamma()->to_vector();
  EXPECT_NE(mean, std::vector<float>(3, 0.f)) << "training moves the statistics";
  bn->set_trainable(false);
  model.compile(SGD(SGDOptions{.learning_rate = 0.1}), "sparse_categorical_crossentropy");
  model.fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  EXPECT_EQ(bn->moving_mean()->to_vector(), mean);
  EXPECT_EQ(bn->gamma()->to_vector(), gamma);
  EXPECT_NE(model.get_layer("dense")->weights()[0]->to_vector(), std::vector<float>(48, 0.f));
}

}  // namespace
}  // namespace strata
