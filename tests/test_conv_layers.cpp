// Convolution and pooling layers against naive loop references in double, on hand-made kernels in
// Keras's layout (kernel..., in / groups, filters), over shapes, strides, paddings, dilations and groups.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "api/strata.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata {
namespace {

std::vector<float> run(const std::function<Tensor(const Tensor&)>& f, const Shape& shape, const std::vector<float>& x, Shape* out_shape) {
  Shape symbolic = shape;
  symbolic[0] = -1;
  const Tensor in = ops::placeholder(symbolic);
  const Tensor out = f(in);
  Program p({in}, {out});
  const TensorView feed{const_cast<float*>(x.data()), DType::float32, shape};
  p.run(Mode::inference, std::span(&feed, 1));
  *out_shape = p.output_shape(0);
  return p.read_output(0);
}

// TensorFlow's "same": total padding so that out = ceil(in / stride); the odd pixel goes after.
std::pair<int, int> same_pad(int in, int k, int stride, int dilation) {
  const int out = (in + stride - 1) / stride;
  const int total = std::max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0);
  return {total / 2, total - total / 2};
}

int out_size(int in, int k, int stride, int dilation, bool same) {
  return same ? (in + stride - 1) / stride : (in - (k - 1) * dilation - 1) / stride + 1;
}

struct ConvCase {
  int h, w, cin, filters, kh, kw, sh, sw, dh, dw, groups;
  bool same;
};

TEST(ConvLayers, Conv2DMatchesLoops) {
  const ConvCase cases[] = {{7, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, false}, {7, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, true},
                            {8, 9, 2, 5, 3, 2, 2, 3, 1, 1, 1, true},  {9, 9, 2, 3, 3, 3, 1, 1, 2, 2, 1, false},
                            {6, 7, 4, 6, 2, 3, 2, 1, 1, 2, 2, true},  {5, 5, 1, 2, 5, 5, 1, 1, 1, 1, 1, false},
                            {6, 6, 3, 3, 1, 1, 2, 2, 1, 1, 1, false}};
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "h=" << c.h << " w=" << c.w << " k=" << c.kh << "x" << c.kw << " s=" << c.sh << "," << c.sw
                                      << " d=" << c.dh << "," << c.dw << " g=" << c.groups << " same=" << c.same);
    clear_session();
    const int n = 2, cpg = c.cin / c.groups, fpg = c.filters / c.groups;
    auto conv = std::make_shared<Conv2D>(c.filters, IntTuple{c.kh, c.kw},
                                         ConvOptions{.strides = {c.sh, c.sw}, .padding = c.same ? "same" : "valid",
                                                     .dilation_rate = {c.dh, c.dw}, .groups = c.groups, .activation = "relu"});
    const auto x = test::random_vector(std::size_t(n * c.h * c.w * c.cin), -1.f, 1.f, 3);
    Shape s;
    (void)run([&](const Tensor& t) { return (*conv)(t); }, {n, c.h, c.w, c.cin}, x, &s);
    const auto k = test::random_vector(std::size_t(c.kh * c.kw * cpg * c.filters), -1.f, 1.f, 4);
    const auto b = test::random_vector(std::size_t(c.filters), -0.5f, 0.5f, 5);
    ASSERT_EQ(conv->kernel()->shape(), (Shape{c.kh, c.kw, cpg, c.filters}));
    conv->kernel()->assign(k);
    conv->bias()->assign(b);
    const auto y = run([&](const Tensor& t) { return conv->trace(t); }, {n, c.h, c.w, c.cin}, x, &s);
    const int oh = out_size(c.h, c.kh, c.sh, c.dh, c.same), ow = out_size(c.w, c.kw, c.sw, c.dw, c.same);
    ASSERT_EQ(s, (Shape{n, oh, ow, c.filters}));
    const int pt = c.same ? same_pad(c.h, c.kh, c.sh, c.dh).first : 0, pl = c.same ? same_pad(c.w, c.kw, c.sw, c.dw).first : 0;
    for (int bi = 0; bi < n; ++bi)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox)
          for (int f = 0; f < c.filters; ++f) {
            const int group = f / fpg;
            double acc = b[std::size_t(f)];
            for (int ky = 0; ky < c.kh; ++ky)
              for (int kx = 0; kx < c.kw; ++kx) {
                const int iy = oy * c.sh + ky * c.dh - pt, ix = ox * c.sw + kx * c.dw - pl;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                for (int ci = 0; ci < cpg; ++ci)
                  acc += double(x[std::size_t(((bi * c.h + iy) * c.w + ix) * c.cin + group * cpg + ci)]) *
                         k[std::size_t(((ky * c.kw + kx) * cpg + ci) * c.filters + f)];
              }
            ASSERT_NEAR(y[std::size_t(((bi * oh + oy) * ow + ox) * c.filters + f)], std::max(acc, 0.0), 1e-4)
                << "at " << bi << "," << oy << "," << ox << "," << f;
          }
  }
}

TEST(ConvLayers, Conv1DMatchesLoops) {
  for (const bool same : {false, true})
    for (const int stride : {1, 2})
      for (const int dilation : {1, 2}) {
        clear_session();
        const int n = 2, steps = 11, cin = 3, filters = 4, k = 3;
        auto conv = std::make_shared<Conv1D>(filters, k, ConvOptions{.strides = stride, .padding = same ? "same" : "valid", .dilation_rate = dilation});
        const auto x = test::random_vector(std::size_t(n * steps * cin), -1.f, 1.f, 6);
        Shape s;
        (void)run([&](const Tensor& t) { return (*conv)(t); }, {n, steps, cin}, x, &s);
        const auto kv = conv->kernel()->to_vector();
        ASSERT_EQ(conv->kernel()->shape(), (Shape{k, cin, filters}));
        const auto y = run([&](const Tensor& t) { return conv->trace(t); }, {n, steps, cin}, x, &s);
        const int out = out_size(steps, k, stride, dilation, same), pad = same ? same_pad(steps, k, stride, dilation).first : 0;
        ASSERT_EQ(s, (Shape{n, out, filters}));
        for (int bi = 0; bi < n; ++bi)
          for (int o = 0; o < out; ++o)
            for (int f = 0; f < filters; ++f) {
              double acc = 0;
              for (int kk = 0; kk < k; ++kk) {
                const int i = o * stride + kk * dilation - pad;
                if (i < 0 || i >= steps) continue;
                for (int ci = 0; ci < cin; ++ci) acc += double(x[std::size_t((bi * steps + i) * cin + ci)]) * kv[std::size_t((kk * cin + ci) * filters + f)];
              }
              ASSERT_NEAR(y[std::size_t((bi * out + o) * filters + f)], acc, 1e-5);
            }
      }
}

TEST(ConvLayers, PoolingMatchesLoops) {
  struct PoolCase {
    int h, w, ph, pw, sh, sw;
    bool same;
  };
  for (const PoolCase& c : {PoolCase{6, 6, 2, 2, 2, 2, false}, PoolCase{7, 5, 2, 2, 2, 2, true}, PoolCase{7, 7, 3, 3, 2, 2, false},
                            PoolCase{5, 6, 3, 2, 1, 2, true}}) {
    for (const bool max : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "h=" << c.h << " w=" << c.w << " pool=" << c.ph << "x" << c.pw << " same=" << c.same << " max=" << max);
      clear_session();
      const int n = 2, ch = 3;
      const auto x = test::random_vector(std::size_t(n * c.h * c.w * ch), -1.f, 1.f, 7);
      const PoolingOptions o{.strides = IntTuple{c.sh, c.sw}, .padding = c.same ? "same" : "valid"};
      Shape s;
      const auto y = run([&](const Tensor& t) {
        return max ? MaxPooling2D({c.ph, c.pw}, o)(t) : AveragePooling2D({c.ph, c.pw}, o)(t);
      }, {n, c.h, c.w, ch}, x, &s);
      const int oh = out_size(c.h, c.ph, c.sh, 1, c.same), ow = out_size(c.w, c.pw, c.sw, 1, c.same);
      ASSERT_EQ(s, (Shape{n, oh, ow, ch}));
      const int pt = c.same ? same_pad(c.h, c.ph, c.sh, 1).first : 0, pl = c.same ? same_pad(c.w, c.pw, c.sw, 1).first : 0;
      for (int bi = 0; bi < n; ++bi)
        for (int oy = 0; oy < oh; ++oy)
          for (int ox = 0; ox < ow; ++ox)
            for (int ci = 0; ci < ch; ++ci) {
              double best = -std::numeric_limits<double>::infinity(), sum = 0;
              int count = 0;
              for (int ky = 0; ky < c.ph; ++ky)
                for (int kx = 0; kx < c.pw; ++kx) {
                  const int iy = oy * c.sh + ky - pt, ix = ox * c.sw + kx - pl;
                  if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;  // padding is ignored, as TensorFlow does
                  const double v = x[std::size_t(((bi * c.h + iy) * c.w + ix) * ch + ci)];
                  best = std::max(best, v);
                  sum += v;
                  ++count;
                }
              ASSERT_NEAR(y[std::size_t(((bi * oh + oy) * ow + ox) * ch + ci)], max ? best : sum / count, 1e-6);
            }
    }
  }
}

TEST(ConvLayers, GlobalPoolingAndPooling1D) {
  clear_session();
  const int n = 2, steps = 6, ch = 3;
  const auto x = test::random_vector(std::size_t(n * steps * ch), -1.f, 1.f, 8);
  Shape s;
  const auto avg = run([](const Tensor& t) { return GlobalAveragePooling1D()(t); }, {n, steps, ch}, x, &s);
  ASSERT_EQ(s, (Shape{n, ch}));
  const auto mx = run([](const Tensor& t) { return GlobalMaxPooling1D()(t); }, {n, steps, ch}, x, &s);
  const auto pooled = run([](const Tensor& t) { return MaxPooling1D(2)(t); }, {n, steps, ch}, x, &s);
  ASSERT_EQ(s, (Shape{n, steps / 2, ch}));
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < ch; ++c) {
      double sum = 0, best = -1e9;
      for (int i = 0; i < steps; ++i) {
        const double v = x[std::size_t((b * steps + i) * ch + c)];
        sum += v;
        best = std::max(best, v);
        if (i % 2 == 1)
          EXPECT_FLOAT_EQ(pooled[std::size_t((b * steps / 2 + i / 2) * ch + c)],
                          std::max(x[std::size_t((b * steps + i - 1) * ch + c)], x[std::size_t((b * steps + i) * ch + c)]));
      }
      EXPECT_NEAR(avg[std::size_t(b * ch + c)], sum / steps, 1e-6);
      EXPECT_FLOAT_EQ(mx[std::size_t(b * ch + c)], float(best));
    }
  const auto kept = run([](const Tensor& t) { return GlobalAveragePooling2D({.keepdims = true})(t); }, {n, 2, 3, ch}, x, &s);
  EXPECT_EQ(s, (Shape{n, 1, 1, ch}));
}

TEST(ConvLayers, ConfigsRoundTripThroughTheRegistry) {
  clear_session();
  Conv2D conv(32, 3, {.strides = 2, .padding = "same", .activation = "relu"});
  const Json c = conv.get_config();
  EXPECT_EQ(c["kernel_size"], Json({3, 3}));
  EXPECT_EQ(c["strides"], Json({2, 2}));
  EXPECT_EQ(layer_from_config("Conv2D", c)->get_config(), c);
  MaxPooling2D pool;
  EXPECT_EQ(pool.get_config()["pool_size"], Json({2, 2}));
  EXPECT_EQ(pool.get_config()["strides"], Json({2, 2}));
  EXPECT_EQ(layer_from_config("MaxPooling2D", pool.get_config())->get_config(), pool.get_config());
  EXPECT_THROW(Conv2D(8, {3, 3, 3}), std::invalid_argument);
  EXPECT_THROW(Conv2D(8, 3, {.padding = "causal"}), std::invalid_argument);
  EXPECT_THROW(Sequential({Input({28, 28}), Conv2D(8, 3)}), std::invalid_argument);  // no channel axis
}

TEST(ConvLayers, ConvnetSummaryMatchesKeras) {
  clear_session();
  unsetenv("COLUMNS");
  Sequential model({Input({28, 28, 1}), Conv2D(32, 3, {.activation = "relu"}), MaxPooling2D(2), Conv2D(64, 3, {.activation = "relu"}),
                    MaxPooling2D(2), Flatten(), Dropout(0.5f), Dense(10, {.activation = "softmax"})});
  // Printed by Keras 3 for the same model (80-column output).
  const std::string keras = R"(Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout (Dropout)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 10)             │        16,010 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 34,826 (136.04 KB)
 Trainable params: 34,826 (136.04 KB)
 Non-trainable params: 0 (0.00 B)
)";
  EXPECT_EQ(model.summary_string(), keras);
}

}  // namespace
}  // namespace strata
