// The 3-D layers (Conv3D, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D,
// ZeroPadding3D, Cropping3D, UpSampling3D, Conv3DTranspose): nineteen configs run by Keras 3
// (scripts/fixtures/keras_volume_layers.py: strides, "same" padding, dilation, groups, output_padding), and the
// 3-D convolution and its transpose against loops in double written from their definitions. Their gradients are checked in
// test_gradients.
#include <gtest/gtest.h>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasVolumeLayersReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasVolumeLayersReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_volume_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasVolumeLayersReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_volume_layers.json")["cases"].size())));

TEST(Conv3D, MatchesLoopsInDouble) {
  // Valid padding, strides (2, 1, 2), dilation (1, 2, 1): y[n, d, h, w, f] = b[f] + sum over the window.
  clear_session();
  const int n = 2, D = 5, H = 6, W = 5, C = 2, F = 3, kd = 2, kh = 2, kw = 3;
  const int sd = 2, sh = 1, sw = 2, dd = 1, dh = 2, dw = 1;
  const int od = (D - ((kd - 1) * dd + 1)) / sd + 1, oh = (H - ((kh - 1) * dh + 1)) / sh + 1, ow = (W - ((kw - 1) * dw + 1)) / sw + 1;
  auto layer = std::make_shared<Conv3D>(F, IntTuple({kd, kh, kw}), ConvOptions{.strides = IntTuple({sd, sh, sw}),
                                                                                .dilation_rate = IntTuple({dd, dh, dw})});
  const Shape shape{n, D, H, W, C};
  const auto x = test::random_vector(std::size_t(shape.numel()), -1, 1, 51);
  (void)test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  const auto k = test::random_vector(std::size_t(kd * kh * kw * C * F), -1, 1, 52), b = test::random_vector(F, -1, 1, 53);
  layer->kernel()->assign(k);
  layer->bias()->assign(b);
  Shape out_shape;
  const auto y = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out_shape);
  ASSERT_EQ(out_shape, Shape({n, od, oh, ow, F}));
  std::vector<double> want;
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < od; ++d)
      for (int h = 0; h < oh; ++h)
        for (int w = 0; w < ow; ++w)
          for (int f = 0; f < F; ++f) {
            double sum = b[std::size_t(f)];
            for (int a = 0; a < kd; ++a)
              for (int p = 0; p < kh; ++p)
                for (int q = 0; q < kw; ++q)
                  for (int c = 0; c < C; ++c) {
                    const int zd = d * sd + a * dd, zh = h * sh + p * dh, zw = w * sw + q * dw;
                    sum += double(x[std::size_t((((i * D + zd) * H + zh) * W + zw) * C + c)]) *
                           k[std::size_t((((a * kh + p) * kw + q) * C + c) * F + f)];
                  }
            want.push_back(sum);
          }
  test::expect_near_all(y, want, 1e-5, "Conv3D");
}

TEST(Conv3DTranspose, MatchesLoopsInDouble) {
  // Valid padding, strides (2, 1, 2): each input voxel adds its kernel-weighted copy at (d * sd, h * sh, w * sw);
  // kernel (kd, kh, kw, filters, in).
  clear_session();
  const int n = 2, D = 3, H = 2, W = 3, C = 2, F = 3, kd = 3, kh = 2, kw = 2, sd = 2, sh = 1, sw = 2;
  const int od = (D - 1) * sd + kd, oh = (H - 1) * sh + kh, ow = (W - 1) * sw + kw;
  auto layer = std::make_shared<Conv3DTranspose>(F, IntTuple({kd, kh, kw}), ConvTransposeOptions{.strides = IntTuple({sd, sh, sw})});
  const Shape shape{n, D, H, W, C};
  const auto x = test::random_vector(std::size_t(shape.numel()), -1, 1, 54);
  (void)test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  const auto k = test::random_vector(std::size_t(kd * kh * kw * F * C), -1, 1, 55), b = test::random_vector(F, -1, 1, 56);
  layer->kernel()->assign(k);
  layer->bias()->assign(b);
  Shape out_shape;
  const auto y = test::run([&](const Tensor& t) { return layer->trace(t); }, shape, x, &out_shape);
  ASSERT_EQ(out_shape, Shape({n, od, oh, ow, F}));
  std::vector<double> want(std::size_t(n * od * oh * ow * F));
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < od; ++d)
      for (int h = 0; h < oh; ++h)
        for (int w = 0; w < ow; ++w)
          for (int f = 0; f < F; ++f) want[std::size_t((((i * od + d) * oh + h) * ow + w) * F + f)] = b[std::size_t(f)];
  for (int i = 0; i < n; ++i)
    for (int zd = 0; zd < D; ++zd)
      for (int zh = 0; zh < H; ++zh)
        for (int zw = 0; zw < W; ++zw)
          for (int a = 0; a < kd; ++a)
            for (int p = 0; p < kh; ++p)
              for (int q = 0; q < kw; ++q)
                for (int f = 0; f < F; ++f)
                  for (int c = 0; c < C; ++c) {
                    const int d = zd * sd + a, h = zh * sh + p, w = zw * sw + q;
                    want[std::size_t((((i * od + d) * oh + h) * ow + w) * F + f)] +=
                        double(x[std::size_t((((i * D + zd) * H + zh) * W + zw) * C + c)]) * k[std::size_t((((a * kh + p) * kw + q) * F + f) * C + c)];
                  }
  test::expect_near_all(y, want, 1e-5, "Conv3DTranspose");
}

TEST(Conv3D, ErrorsNameTheShape) {
  clear_session();
  test::expect_error_containing([] { Sequential({Input({4, 4, 2}), Conv3D(2, 2)}); }, "expects inputs of rank 5 (batch, depth, height, width, channels)");
  test::expect_error_containing([] { Sequential({Input({1, 4, 4, 2}), Conv3D(2, 2)}); }, "a depth window of 2 does not fit input");
}

}  // namespace
}  // namespace strata
