// Every backend primitive against a naive reference computed in double, on every available backend and on
// the CUDA backend's kernels run on the host (device_on_host.h).
// Tolerances: float32 arithmetic against double; 1e-5 absolute + 1e-5 relative for element-wise maps, 1e-4
// for sums over up to a few hundred terms (GEMM, convolution), unless a test states otherwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "backends/kernel_geometry.h"
#include "device_on_host.h"
#include "test_util.h"

namespace strata::test {
namespace {

const bool device_on_host_registered = (register_device_on_host(), true);

class BackendOps : public ::testing::TestWithParam<std::string> {
 protected:
  Backend& be() { return get_backend(GetParam()); }
};

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

TEST_P(BackendOps, FillAndCast) {
  DeviceTensor f(be(), {7});
  be().fill(f.view, 2.5f);
  for (float v : f.read()) EXPECT_EQ(v, 2.5f);
  DeviceTensor i(be(), {5}, DType::int32);
  be().fill(i.view, 7);
  for (auto v : i.read<std::int32_t>()) EXPECT_EQ(v, 7);

  const std::vector<float> src{-2.7f, -0.2f, 0.f, 1.5f, 3.9f, 255.f};
  DeviceTensor x(be(), {6}, src);
  DeviceTensor as_int(be(), {6}, DType::int64);
  be().cast(x.view, as_int.view);
  EXPECT_EQ(as_int.read<std::int64_t>(), (std::vector<std::int64_t>{-2, 0, 0, 1, 3, 255}));  // truncation, as C++
  DeviceTensor bytes(be(), {3}, std::vector<std::uint8_t>{0, 128, 255}, DType::uint8);
  DeviceTensor back(be(), {3});
  be().cast(bytes.view, back.view);
  EXPECT_EQ(back.read(), (std::vector<float>{0.f, 128.f, 255.f}));
  for (DType half : {DType::float16, DType::bfloat16}) {
    DeviceTensor h(be(), {6}, half);
    DeviceTensor r(be(), {6});
    be().cast(x.view, h.view);
    be().cast(h.view, r.view);
    const auto got = r.read();
    for (std::size_t k = 0; k < src.size(); ++k) EXPECT_NEAR(got[k], src[k], std::fabs(src[k]) * 1e-2 + 1e-3);
  }
}

TEST_P(BackendOps, CopyStridedTransposeAndAccumulate) {
  const Shape s{2, 3, 4};
  const auto host = random_vector(24, -1, 1, 1);
  DeviceTensor x(be(), s, host);
  // out[k, i, j] = x[i, j, k]
  DeviceTensor out(be(), {4, 2, 3});
  StridedView src = StridedView::contiguous(x.view);
  src.shape = Shape{4, 2, 3};
  src.strides = {1, 12, 4};
  be().copy_strided(src, StridedView::contiguous(out.view), false);
  std::vector<double> expected(24);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) expected[std::size_t((k * 2 + i) * 3 + j)] = host[std::size_t((i * 3 + j) * 4 + k)];
  expect_close(out.read(), expected, 0, 0, "transpose");

  // Accumulate a row broadcast: acc[i, j] += row[j].
  DeviceTensor acc(be(), {3, 4}, std::vector<float>(12, 1.f));
  DeviceTensor row(be(), {4}, std::vector<float>{1, 2, 3, 4});
  StridedView b = StridedView::contiguous(row.view);
  b.shape = Shape{3, 4};
  b.strides = {0, 1};
  be().copy_strided(b, StridedView::contiguous(acc.view), true);
  std::vector<double> e2(12);
  for (int i = 0; i < 12; ++i) e2[std::size_t(i)] = 1 + (i % 4) + 1;
  expect_close(acc.read(), e2, 0, 0, "accumulate");
}

double ref_unary(UnaryOp op, double x, double alpha) {
  const double selu_a = 1.6732632423543772, selu_s = 1.0507009873554805;
  switch (op) {
    case UnaryOp::negative: return -x;
    case UnaryOp::abs: return std::fabs(x);
    case UnaryOp::sign: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::log1p: return std::log1p(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return 1 / std::sqrt(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return 1 / x;
    case UnaryOp::erf: return std::erf(x);
    case UnaryOp::relu: return std::max(x, 0.0);
    case UnaryOp::sigmoid: return 1 / (1 + std::exp(-x));
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case UnaryOp::gelu_tanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case UnaryOp::elu: return x > 0 ? x : alpha * (std::exp(x) - 1);
    case UnaryOp::selu: return selu_s * (x > 0 ? x : selu_a * (std::exp(x) - 1));
    case UnaryOp::softplus: return std::log(1 + std::exp(x));
    case UnaryOp::softsign: return x / (1 + std::fabs(x));
    case UnaryOp::leaky_relu: return x > 0 ? x : alpha * x;
    case UnaryOp::silu: return x / (1 + std::exp(-x));
    case UnaryOp::hard_sigmoid: return std::clamp(x / 6 + 0.5, 0.0, 1.0);
    case UnaryOp::sin: return std::sin(x);
    case UnaryOp::cos: return std::cos(x);
  }
  return 0;
}

const UnaryOp kAllUnary[] = {
    UnaryOp::negative, UnaryOp::abs,  UnaryOp::sign,    UnaryOp::exp,        UnaryOp::log,      UnaryOp::log1p,
    UnaryOp::sqrt,     UnaryOp::rsqrt, UnaryOp::square, UnaryOp::reciprocal, UnaryOp::erf,      UnaryOp::relu,
    UnaryOp::sigmoid,  UnaryOp::tanh, UnaryOp::gelu,    UnaryOp::gelu_tanh,  UnaryOp::elu,      UnaryOp::selu,
    UnaryOp::softplus, UnaryOp::softsign, UnaryOp::leaky_relu, UnaryOp::silu, UnaryOp::hard_sigmoid,
    UnaryOp::sin,      UnaryOp::cos};

bool needs_positive(UnaryOp op) {
  return op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt || op == UnaryOp::log1p ||
         op == UnaryOp::reciprocal;
}

TEST_P(BackendOps, UnaryForwardAndBackward) {
  const Shape s{1000};
  const float alpha = 0.3f;
  for (UnaryOp op : kAllUnary) {
    SCOPED_TRACE(std::string(unary_op_name(op)));
    // Away from kinks at 0 and +-3 so that a central difference is meaningful.
    auto host = needs_positive(op) ? random_vector(1000, 0.2f, 4.f, 3) : random_away_from_zero(1000, 0.05f, 5.f, 3);
    for (auto& v : host)
      if (op == UnaryOp::hard_sigmoid && std::fabs(std::fabs(v) - 3.f) < 0.05f) v = 2.f;
    DeviceTensor x(be(), s, host), y(be(), s), dy(be(), s, random_vector(1000, -1, 1, 4)), dx(be(), s);
    be().unary(op, x.view, y.view, alpha);
    std::vector<double> ey(1000), edx(1000);
    const auto g = dy.read();
    for (std::size_t i = 0; i < 1000; ++i) {
      const double xv = host[i];
      ey[i] = ref_unary(op, xv, alpha);
      const double h = 1e-6 * std::max(1.0, std::fabs(xv));
      edx[i] = g[i] * (ref_unary(op, xv + h, alpha) - ref_unary(op, xv - h, alpha)) / (2 * h);
    }
    expect_close(y.read(), ey, 1e-6, 2e-6, "forward");
    be().unary_backward(op, x.view, y.view, dy.view, dx.view, alpha);
    expect_close(dx.read(), edx, 1e-5, 1e-4, "backward");
  }
}

double ref_binary(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::subtract: return a - b;
    case BinaryOp::multiply: return a * b;
    case BinaryOp::divide: return a / b;
    case BinaryOp::power: return std::pow(a, b);
    case BinaryOp::maximum: return std::max(a, b);
    case BinaryOp::minimum: return std::min(a, b);
    case BinaryOp::greater: return a > b;
    case BinaryOp::greater_equal: return a >= b;
    case BinaryOp::less: return a < b;
    case BinaryOp::less_equal: return a <= b;
    case BinaryOp::equal: return a == b;
    case BinaryOp::not_equal: return a != b;
  }
  return 0;
}

TEST_P(BackendOps, BinaryBroadcasting) {
  const BinaryOp ops[] = {BinaryOp::add,     BinaryOp::subtract,      BinaryOp::multiply, BinaryOp::divide,
                          BinaryOp::power,   BinaryOp::maximum,       BinaryOp::minimum,  BinaryOp::greater,
                          BinaryOp::greater_equal, BinaryOp::less,    BinaryOp::less_equal, BinaryOp::equal,
                          BinaryOp::not_equal};
  struct Case {
    Shape a, b, out;
  };
  const Case cases[] = {{{4, 5}, {4, 5}, {4, 5}},          {{3, 1, 5}, {1, 4, 5}, {3, 4, 5}},
                        {{1, 1}, {6, 7}, {6, 7}},          {{6, 7}, {1, 1}, {6, 7}},
                        {{2, 3, 1, 4}, {1, 3, 5, 1}, {2, 3, 5, 4}}, {{300, 200}, {1, 200}, {300, 200}}};
  for (const Case& c : cases)
    for (BinaryOp op : ops) {
      SCOPED_TRACE(std::string(binary_op_name(op)) + " " + c.a.to_string() + " " + c.b.to_string());
      auto ha = random_vector(std::size_t(c.a.numel()), 0.5f, 2.f, 5);
      auto hb = random_vector(std::size_t(c.b.numel()), 0.5f, 2.f, 6);
      hb[0] = ha[0];  // exercise equality
      DeviceTensor a(be(), c.a, ha), b(be(), c.b, hb), out(be(), c.out);
      be().binary(op, a.view, b.view, out.view);
      std::vector<double> e(std::size_t(c.out.numel()));
      const auto sa = strides_of(c.a), sb = strides_of(c.b);
      for (std::int64_t i = 0; i < c.out.numel(); ++i) {
        const auto idx = unravel(i, c.out);
        std::int64_t ia = 0, ib = 0;
        for (int d = 0; d < c.out.rank(); ++d) {
          ia += (c.a[d] == 1 ? 0 : idx[std::size_t(d)]) * sa[std::size_t(d)];
          ib += (c.b[d] == 1 ? 0 : idx[std::size_t(d)]) * sb[std::size_t(d)];
        }
        e[std::size_t(i)] = ref_binary(op, ha[std::size_t(ia)], hb[std::size_t(ib)]);
      }
      expect_close(out.read(), e, 1e-6, 1e-6, "binary");
    }
}

TEST_P(BackendOps, GemmAllTransposesAndBatches) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t batch : {1, 3})
        // Few-row products (one sample) take a path of their own on the CPU: 150 columns leave a partial block.
        for (const auto [m, n] : {std::pair<std::int64_t, std::int64_t>{37, 29}, {1, 150}, {3, 64}}) {
        SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb << " batch=" << batch << " m=" << m << " n=" << n);
        const std::int64_t k = 53;
        const auto ha = random_vector(std::size_t(batch * m * k), -1, 1, 7);
        const auto hb = random_vector(std::size_t(batch * k * n), -1, 1, 8);
        const auto hc = random_vector(std::size_t(batch * m * n), -1, 1, 9);
        DeviceTensor a(be(), {batch * m * k}, ha), b(be(), {batch * k * n}, hb), c(be(), {batch * m * n}, hc);
        GemmArgs g;
        g.transpose_a = ta;
        g.transpose_b = tb;
        g.m = m;
        g.n = n;
        g.k = k;
        g.alpha = 0.7f;
        g.beta = batch == 1 && m != 3 ? 0.f : 0.5f;
        g.a = a.view.as<const float>();
        g.lda = ta ? m : k;
        g.b = b.view.as<const float>();
        g.ldb = tb ? k : n;
        g.c = c.view.as<float>();
        g.ldc = n;
        g.batch = batch;
        g.stride_a = m * k;
        g.stride_b = k * n;
        g.stride_c = m * n;
        be().gemm(g);
        std::vector<double> e(std::size_t(batch * m * n));
        for (std::int64_t bi = 0; bi < batch; ++bi)
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
              double s = 0;
              for (std::int64_t p = 0; p < k; ++p) {
                const double av = ha[std::size_t(bi * m * k + (ta ? p * m + i : i * k + p))];
                const double bv = hb[std::size_t(bi * k * n + (tb ? j * k + p : p * n + j))];
                s += av * bv;
              }
              const std::size_t o = std::size_t(bi * m * n + i * n + j);
              e[o] = g.alpha * s + g.beta * hc[o];
            }
        expect_close(c.read(), e, 1e-4, 1e-4, "gemm");
      }
}

TEST_P(BackendOps, ReduceOverAxes) {
  const Shape s{3, 4, 5, 6};
  const auto host = random_vector(360, -2, 2, 10);
  DeviceTensor x(be(), s, host);
  const std::vector<std::vector<int>> axis_sets = {{0}, {1}, {3}, {0, 1}, {1, 3}, {0, 2}, {0, 1, 2, 3}, {2, 3}, {}};
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::mean, ReduceOp::max, ReduceOp::min})
    for (const auto& axes : axis_sets) {
      Shape os = s;
      for (int a : axes) os[a] = 1;
      SCOPED_TRACE(std::string(reduce_op_name(op)) + " to " + os.to_string());
      DeviceTensor out(be(), os);
      be().reduce(op, x.view, out.view);
      std::vector<double> e(std::size_t(os.numel()),
                            op == ReduceOp::max ? -1e300 : op == ReduceOp::min ? 1e300 : 0.0);
      std::vector<int> count(e.size(), 0);
      const auto so = strides_of(os);
      for (std::int64_t i = 0; i < 360; ++i) {
        const auto idx = unravel(i, s);
        std::int64_t o = 0;
        for (int d = 0; d < 4; ++d) o += (os[d] == 1 ? 0 : idx[std::size_t(d)]) * so[std::size_t(d)];
        const double v = host[std::size_t(i)];
        double& r = e[std::size_t(o)];
        r = op == ReduceOp::max ? std::max(r, v) : op == ReduceOp::min ? std::min(r, v) : r + v;
        ++count[std::size_t(o)];
      }
      if (op == ReduceOp::mean)
        for (std::size_t i = 0; i < e.size(); ++i) e[i] /= count[i];
      expect_close(out.read(), e, 1e-5, 1e-5, "reduce");
    }
}

// A NaN makes its maximum and minimum NaN wherever it lies (after numbers, in a later chunk of a long
// reduction), as numpy and JAX; the other outputs are untouched.
TEST_P(BackendOps, ReduceMaxAndMinPropagateNaN) {
  const Shape s{3, 2000};
  auto host = random_vector(6000, -2, 2, 11);
  host[2000 + 1500] = std::numeric_limits<float>::quiet_NaN();
  DeviceTensor x(be(), s, host);
  for (ReduceOp op : {ReduceOp::max, ReduceOp::min})
    for (const Shape& os : {Shape{3, 1}, Shape{1, 2000}, Shape{1, 1}}) {
      SCOPED_TRACE(std::string(reduce_op_name(op)) + " to " + os.to_string());
      DeviceTensor out(be(), os);
      be().reduce(op, x.view, out.view);
      const auto got = out.read();
      const std::size_t nan_at = os[0] == 3 ? 1 : os[1] == 2000 ? 1500 : 0;
      for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(std::isnan(got[i]), i == nan_at) << "output " << i;
    }
}

TEST_P(BackendOps, ArgmaxTakesTheFirstNaNElseTheFirstMaximum) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Rows as numpy.argmax answers them: 3 (first NaN, though a larger number follows), 1 (first of two
  // equal maxima), 0 (NaN first).
  DeviceTensor x(be(), Shape{3, 6}, {1, 3, 3, nan, nan, 5, -1, 4, 2, 4, 0, 4, nan, 1, nan, 2, 3, 9});
  DeviceTensor am(be(), Shape{3}, DType::int64);
  be().argmax(x.view, am.view, 1);
  EXPECT_EQ(am.read<std::int64_t>(), (std::vector<std::int64_t>{3, 1, 0}));
}

TEST_P(BackendOps, ArgmaxSoftmaxAndBackward) {
  const Shape s{3, 4, 5};
  const auto host = random_vector(60, -3, 3, 11);
  const auto g = random_vector(60, -1, 1, 12);
  DeviceTensor x(be(), s, host), dy(be(), s, g);
  for (int axis : {0, 1, 2}) {
    SCOPED_TRACE(axis);
    Shape rs;
    for (int d = 0; d < 3; ++d)
      if (d != axis) rs.push_back(s[d]);
    DeviceTensor am(be(), rs, DType::int32);
    be().argmax(x.view, am.view, axis);
    const auto got = am.read<std::int32_t>();
    const auto st = strides_of(s);
    for (std::int64_t i = 0; i < rs.numel(); ++i) {
      auto ridx = unravel(i, rs);
      ridx.insert(ridx.begin() + axis, 0);
      std::int64_t base = 0;
      for (int d = 0; d < 3; ++d) base += ridx[std::size_t(d)] * st[std::size_t(d)];
      int best = 0;
      for (int k = 1; k < s[axis]; ++k)
        if (host[std::size_t(base + k * st[std::size_t(axis)])] > host[std::size_t(base + best * st[std::size_t(axis)])])
          best = k;
      EXPECT_EQ(got[std::size_t(i)], best);
    }
    for (bool log : {false, true}) {
      DeviceTensor y(be(), s), dx(be(), s);
      be().softmax(x.view, y.view, axis, log);
      be().softmax_backward(y.view, dy.view, dx.view, axis, log);
      std::vector<double> ey(60), edx(60);
      for (std::int64_t i = 0; i < rs.numel(); ++i) {
        auto ridx = unravel(i, rs);
        ridx.insert(ridx.begin() + axis, 0);
        std::int64_t base = 0;
        for (int d = 0; d < 3; ++d) base += ridx[std::size_t(d)] * st[std::size_t(d)];
        const std::int64_t step = st[std::size_t(axis)], len = s[axis];
        double z = 0;
        for (int k = 0; k < len; ++k) z += std::exp(double(host[std::size_t(base + k * step)]));
        std::vector<double> p(static_cast<std::size_t>(len));
        for (int k = 0; k < len; ++k) p[std::size_t(k)] = std::exp(double(host[std::size_t(base + k * step)])) / z;
        // Jacobian-vector product written out in full: dx_j = sum_k dy_k * d y_k / d x_j.
        for (int j = 0; j < len; ++j) {
          const std::size_t oj = std::size_t(base + j * step);
          ey[oj] = log ? std::log(p[std::size_t(j)]) : p[std::size_t(j)];
          double acc = 0;
          for (int k = 0; k < len; ++k) {
            const double gk = g[std::size_t(base + k * step)];
            const double jac = log ? (double(j == k) - p[std::size_t(j)])
                                   : p[std::size_t(k)] * (double(j == k) - p[std::size_t(j)]);
            acc += gk * jac;
          }
          edx[oj] = acc;
        }
      }
      expect_close(y.read(), ey, 1e-6, 1e-5, log ? "log_softmax" : "softmax");
      expect_close(dx.read(), edx, 1e-6, 1e-5, log ? "log_softmax backward" : "softmax backward");
    }
  }
}

// The fused recurrent cells: forward against the definition in double, each gradient kernel against
// central differences of that definition (so the closed-form derivatives are checked independently).
TEST_P(BackendOps, RecurrentCells) {
  const std::int64_t rows = 3, u = 5;
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  // LSTM: z (4u), c_prev (u) -> h, c; the loss sum(dh * h + dc * c) differentiated.
  const auto z = random_vector(std::size_t(rows * 4 * u), -2, 2, 31), c_prev = random_vector(std::size_t(rows * u), -1, 1, 32);
  const auto dh = random_vector(std::size_t(rows * u), -1, 1, 33), dc = random_vector(std::size_t(rows * u), -1, 1, 34);
  auto lstm = [&](std::vector<double> zz, std::vector<double> cp, std::vector<double>& h, std::vector<double>& c) {
    h.assign(std::size_t(rows * u), 0), c.assign(std::size_t(rows * u), 0);
    for (std::int64_t b = 0; b < rows; ++b)
      for (std::int64_t j = 0; j < u; ++j) {
        const double* zr = zz.data() + b * 4 * u;
        const std::size_t o = std::size_t(b * u + j);
        c[o] = sig(zr[u + j]) * cp[o] + sig(zr[j]) * std::tanh(zr[2 * u + j]);
        h[o] = sig(zr[3 * u + j]) * std::tanh(c[o]);
      }
  };
  auto lstm_loss = [&](const std::vector<double>& zz, const std::vector<double>& cp) {
    std::vector<double> h, c;
    lstm(zz, cp, h, c);
    double l = 0;
    for (std::size_t i = 0; i < h.size(); ++i) l += dh[i] * h[i] + dc[i] * c[i];
    return l;
  };
  auto numeric = [](auto&& loss, std::vector<double> x) {
    std::vector<double> g(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double orig = x[i], eps = 1e-6;
      x[i] = orig + eps;
      const double up = loss(x);
      x[i] = orig - eps;
      const double down = loss(x);
      x[i] = orig;
      g[i] = (up - down) / (2 * eps);
    }
    return g;
  };
  const std::vector<double> zd(z.begin(), z.end()), cd(c_prev.begin(), c_prev.end());
  std::vector<double> eh, ec;
  lstm(zd, cd, eh, ec);
  DeviceTensor tz(be(), {rows, 4 * u}, z), tcp(be(), {rows, u}, c_prev), th(be(), {rows, u}), tc(be(), {rows, u});
  DeviceTensor tdh(be(), {rows, u}, dh), tdc(be(), {rows, u}, dc), tdz(be(), {rows, 4 * u}), tdcp(be(), {rows, u});
  be().rnn_cell(RnnCellOp::lstm, std::vector<TensorView>{tz.view, tcp.view}, std::vector<TensorView>{th.view, tc.view});
  expect_close(th.read(), eh, 1e-6, 1e-5, "lstm h");
  expect_close(tc.read(), ec, 1e-6, 1e-5, "lstm c");
  be().rnn_cell(RnnCellOp::lstm_grad_z, std::vector<TensorView>{tz.view, tcp.view, tc.view, tdh.view, tdc.view}, std::vector<TensorView>{tdz.view});
  be().rnn_cell(RnnCellOp::lstm_grad_c, std::vector<TensorView>{tz.view, tc.view, tdh.view, tdc.view}, std::vector<TensorView>{tdcp.view});
  expect_close(tdz.read(), numeric([&](const std::vector<double>& v) { return lstm_loss(v, cd); }, zd), 1e-5, 1e-4, "lstm dz");
  expect_close(tdcp.read(), numeric([&](const std::vector<double>& v) { return lstm_loss(zd, v); }, cd), 1e-5, 1e-4, "lstm dc_prev");

  // GRU (reset after): x (3u), r (3u), h_prev (u) -> h; the loss sum(dh * h).
  const auto x = random_vector(std::size_t(rows * 3 * u), -2, 2, 35), r = random_vector(std::size_t(rows * 3 * u), -2, 2, 36);
  const auto hp = random_vector(std::size_t(rows * u), -1, 1, 37);
  auto gru_loss = [&](const std::vector<double>& xx, const std::vector<double>& rr, const std::vector<double>& hh, std::vector<double>* out) {
    double l = 0;
    for (std::int64_t b = 0; b < rows; ++b)
      for (std::int64_t j = 0; j < u; ++j) {
        const double* xr = xx.data() + b * 3 * u;
        const double* rg = rr.data() + b * 3 * u;
        const std::size_t o = std::size_t(b * u + j);
        const double zg = sig(xr[j] + rg[j]), reset = sig(xr[u + j] + rg[u + j]);
        const double cand = std::tanh(xr[2 * u + j] + reset * rg[2 * u + j]);
        const double h = zg * hh[o] + (1 - zg) * cand;
        if (out) (*out)[o] = h;
        l += dh[o] * h;
      }
    return l;
  };
  const std::vector<double> xd(x.begin(), x.end()), rd(r.begin(), r.end()), hd(hp.begin(), hp.end());
  std::vector<double> egh(std::size_t(rows * u));
  gru_loss(xd, rd, hd, &egh);
  DeviceTensor gx(be(), {rows, 3 * u}, x), gr(be(), {rows, 3 * u}, r), ghp(be(), {rows, u}, hp), gh(be(), {rows, u});
  DeviceTensor gdx(be(), {rows, 3 * u}), gdr(be(), {rows, 3 * u}), gdh(be(), {rows, u});
  be().rnn_cell(RnnCellOp::gru, std::vector<TensorView>{gx.view, gr.view, ghp.view}, std::vector<TensorView>{gh.view});
  expect_close(gh.read(), egh, 1e-6, 1e-5, "gru h");
  const std::vector<TensorView> operands{gx.view, gr.view, ghp.view, tdh.view};
  be().rnn_cell(RnnCellOp::gru_grad_x, operands, std::vector<TensorView>{gdx.view});
  be().rnn_cell(RnnCellOp::gru_grad_r, operands, std::vector<TensorView>{gdr.view});
  be().rnn_cell(RnnCellOp::gru_grad_h, operands, std::vector<TensorView>{gdh.view});
  expect_close(gdx.read(), numeric([&](const std::vector<double>& v) { return gru_loss(v, rd, hd, nullptr); }, xd), 1e-5, 1e-4, "gru dx");
  expect_close(gdr.read(), numeric([&](const std::vector<double>& v) { return gru_loss(xd, v, hd, nullptr); }, rd), 1e-5, 1e-4, "gru dr");
  expect_close(gdh.read(), numeric([&](const std::vector<double>& v) { return gru_loss(xd, rd, v, nullptr); }, hd), 1e-5, 1e-4, "gru dh_prev");
}

TEST_P(BackendOps, GatherAndScatterAdd) {
  // axis 0 (embedding lookup): table (6, 3), indices (2, 4).
  const auto table = random_vector(18, -1, 1, 13);
  const std::vector<std::int32_t> idx{5, 0, 2, 2, 1, 5, 3, 0};
  DeviceTensor t(be(), {6, 3}, table), i(be(), {2, 4}, idx, DType::int32), out(be(), {2, 4, 3});
  be().gather(t.view, i.view, out.view, 0, 0);
  std::vector<double> e(24);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) e[std::size_t(r * 3 + c)] = table[std::size_t(idx[std::size_t(r)] * 3 + c)];
  expect_close(out.read(), e, 0, 0, "gather axis 0");

  const auto upd = random_vector(24, -1, 1, 14);
  DeviceTensor u(be(), {2, 4, 3}, upd), acc(be(), {6, 3});
  be().scatter_add(u.view, i.view, acc.view, 0, 0);
  std::vector<double> es(18, 0.0);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 3; ++c) es[std::size_t(idx[std::size_t(r)] * 3 + c)] += upd[std::size_t(r * 3 + c)];
  expect_close(acc.read(), es, 1e-6, 1e-6, "scatter_add axis 0");

  // batch_dims 1 (picking one class per row): table (4, 5), indices (4,), int64.
  const auto logits = random_vector(20, -1, 1, 15);
  const std::vector<std::int64_t> labels{4, 0, 2, 4};
  DeviceTensor l(be(), {4, 5}, logits), lab(be(), {4}, labels, DType::int64), picked(be(), {4});
  be().gather(l.view, lab.view, picked.view, 1, 1);
  std::vector<double> ep(4);
  for (int r = 0; r < 4; ++r) ep[std::size_t(r)] = logits[std::size_t(r * 5 + labels[std::size_t(r)])];
  expect_close(picked.read(), ep, 0, 0, "gather batch_dims 1");
  DeviceTensor back(be(), {4, 5});
  be().scatter_add(picked.view, lab.view, back.view, 1, 1);
  const auto b = back.read();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 5; ++c)
      EXPECT_EQ(b[std::size_t(r * 5 + c)], c == labels[std::size_t(r)] ? float(ep[std::size_t(r)]) : 0.f);

  const std::vector<std::int32_t> bad{0, 6};
  DeviceTensor ib(be(), {2}, bad, DType::int32), ob(be(), {2, 3});
  EXPECT_THROW(be().gather(t.view, ib.view, ob.view, 0, 0), std::out_of_range);
}

struct ConvCase {
  std::int64_t n, h, w, c, kh, kw, o, sh, sw, dh, dw, pt, pb, pl, pr, groups;
};

TEST_P(BackendOps, Conv2dForwardAndBackward) {
  const ConvCase cases[] = {
      {2, 7, 6, 3, 3, 3, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1},  // valid
      {2, 7, 6, 3, 3, 3, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1},  // strided, padded
      {1, 8, 8, 2, 3, 2, 3, 1, 2, 2, 1, 2, 2, 0, 1, 1},  // dilated, asymmetric padding
      {2, 5, 5, 4, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 2},  // grouped
      {3, 4, 5, 6, 1, 1, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1},  // pointwise
      {2, 6, 6, 4, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 4},  // depthwise
      // Large enough to run on several threads: one image split by rows; row ranges that cross images and
      // several cache-sized chunks per thread.
      {1, 20, 20, 8, 3, 3, 16, 1, 1, 1, 1, 0, 0, 0, 0, 1},
      {3, 30, 17, 3, 3, 3, 8, 1, 1, 1, 1, 1, 1, 1, 1, 1},
      {4, 40, 12, 16, 3, 3, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1},
  };
  for (const ConvCase& k : cases) {
    const std::int64_t cg = k.c / k.groups, og = k.o / k.groups;
    const std::int64_t oh = (k.h + k.pt + k.pb - k.dh * (k.kh - 1) - 1) / k.sh + 1;
    const std::int64_t ow = (k.w + k.pl + k.pr - k.dw * (k.kw - 1) - 1) / k.sw + 1;
    SCOPED_TRACE(::testing::Message() << "x(" << k.n << "," << k.h << "," << k.w << "," << k.c << ") k" << k.kh << "x"
                                      << k.kw << " stride " << k.sh << "," << k.sw << " groups " << k.groups);
    const Shape xs{k.n, k.h, k.w, k.c}, ks{k.kh, k.kw, cg, k.o}, ys{k.n, oh, ow, k.o};
    const auto hx = random_vector(std::size_t(xs.numel()), -1, 1, 16);
    const auto hk = random_vector(std::size_t(ks.numel()), -1, 1, 17);
    const auto hg = random_vector(std::size_t(ys.numel()), -1, 1, 18);
    DeviceTensor x(be(), xs, hx), kern(be(), ks, hk), y(be(), ys), dy(be(), ys, hg), dx(be(), xs), dk(be(), ks);
    const Window2D w{.kernel_h = k.kh, .kernel_w = k.kw, .stride_h = k.sh, .stride_w = k.sw, .dilation_h = k.dh,
                     .dilation_w = k.dw, .pad_top = k.pt, .pad_left = k.pl, .groups = k.groups};
    be().conv2d(x.view, kern.view, y.view, w);
    be().conv2d_backward_data(dy.view, kern.view, dx.view, w);
    be().conv2d_backward_filter(x.view, dy.view, dk.view, w);
    std::vector<double> ey(std::size_t(ys.numel()), 0), edx(std::size_t(xs.numel()), 0), edk(std::size_t(ks.numel()), 0);
    for (std::int64_t n = 0; n < k.n; ++n)
      for (std::int64_t a = 0; a < oh; ++a)
        for (std::int64_t b = 0; b < ow; ++b)
          for (std::int64_t o = 0; o < k.o; ++o) {
            const std::int64_t grp = o / og;
            const std::size_t yi = std::size_t(((n * oh + a) * ow + b) * k.o + o);
            for (std::int64_t i = 0; i < k.kh; ++i)
              for (std::int64_t j = 0; j < k.kw; ++j)
                for (std::int64_t c = 0; c < cg; ++c) {
                  const std::int64_t iy = a * k.sh - k.pt + i * k.dh, ix = b * k.sw - k.pl + j * k.dw;
                  if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
                  const std::size_t xi = std::size_t(((n * k.h + iy) * k.w + ix) * k.c + grp * cg + c);
                  const std::size_t ki = std::size_t(((i * k.kw + j) * cg + c) * k.o + o);
                  ey[yi] += double(hx[xi]) * hk[ki];
                  edx[xi] += double(hg[yi]) * hk[ki];
                  edk[ki] += double(hg[yi]) * hx[xi];
                }
          }
    expect_close(y.read(), ey, 1e-4, 1e-4, "conv2d");
    expect_close(dx.read(), edx, 1e-4, 1e-4, "conv2d_backward_data");
    expect_close(dk.read(), edk, 1e-4, 1e-4, "conv2d_backward_filter");
  }
}

TEST_P(BackendOps, Pool2dForwardAndBackward) {
  struct PoolCase {
    std::int64_t kh, kw, sh, sw, pt, pb, pl, pr;
  };
  const PoolCase cases[] = {{2, 2, 2, 2, 0, 0, 0, 0}, {3, 3, 1, 1, 1, 1, 1, 1}, {3, 2, 2, 1, 0, 1, 0, 1}};
  const Shape xs{2, 7, 6, 3};
  const auto hx = random_vector(std::size_t(xs.numel()), -1, 1, 19);
  for (PoolKind kind : {PoolKind::max, PoolKind::average})
    for (const PoolCase& p : cases) {
      const std::int64_t oh = (7 + p.pt + p.pb - p.kh) / p.sh + 1, ow = (6 + p.pl + p.pr - p.kw) / p.sw + 1;
      const Shape ys{2, oh, ow, 3};
      SCOPED_TRACE(::testing::Message() << (kind == PoolKind::max ? "max " : "avg ") << p.kh << "x" << p.kw);
      const auto hg = random_vector(std::size_t(ys.numel()), -1, 1, 20);
      DeviceTensor x(be(), xs, hx), y(be(), ys), dy(be(), ys, hg), dx(be(), xs);
      const Window2D w{.kernel_h = p.kh, .kernel_w = p.kw, .stride_h = p.sh, .stride_w = p.sw, .pad_top = p.pt, .pad_left = p.pl};
      be().pool2d(kind, x.view, y.view, w);
      be().pool2d_backward(kind, x.view, y.view, dy.view, dx.view, w);
      std::vector<double> ey(std::size_t(ys.numel())), edx(std::size_t(xs.numel()), 0);
      for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t a = 0; a < oh; ++a)
          for (std::int64_t b = 0; b < ow; ++b)
            for (std::int64_t c = 0; c < 3; ++c) {
              double best = -1e300, sum = 0;
              std::size_t arg = 0;
              int count = 0;
              for (std::int64_t i = 0; i < p.kh; ++i)
                for (std::int64_t j = 0; j < p.kw; ++j) {
                  const std::int64_t iy = a * p.sh - p.pt + i, ix = b * p.sw - p.pl + j;
                  if (iy < 0 || iy >= 7 || ix < 0 || ix >= 6) continue;
                  const std::size_t xi = std::size_t(((n * 7 + iy) * 6 + ix) * 3 + c);
                  if (hx[xi] > best) {
                    best = hx[xi];
                    arg = xi;
                  }
                  sum += hx[xi];
                  ++count;
                }
              const std::size_t yi = std::size_t(((n * oh + a) * ow + b) * 3 + c);
              ey[yi] = kind == PoolKind::max ? best : sum / count;
              if (kind == PoolKind::max) {
                edx[arg] += hg[yi];
              } else {
                for (std::int64_t i = 0; i < p.kh; ++i)
                  for (std::int64_t j = 0; j < p.kw; ++j) {
                    const std::int64_t iy = a * p.sh - p.pt + i, ix = b * p.sw - p.pl + j;
                    if (iy < 0 || iy >= 7 || ix < 0 || ix >= 6) continue;
                    edx[std::size_t(((n * 7 + iy) * 6 + ix) * 3 + c)] += hg[yi] / count;
                  }
              }
            }
      expect_close(y.read(), ey, 1e-6, 1e-6, "pool2d");
      expect_close(dx.read(), edx, 1e-6, 1e-5, "pool2d_backward");
    }
}

TEST_P(BackendOps, RandomStreams) {
  const std::int64_t n = 200000;
  DeviceTensor u(be(), {n}), u2(be(), {n}), u3(be(), {n}), nrm(be(), {n}), mask(be(), {n});
  be().random(RandomKind::uniform, u.view, 42, 7, -1.f, 3.f);
  be().random(RandomKind::uniform, u2.view, 42, 7, -1.f, 3.f);
  be().random(RandomKind::uniform, u3.view, 42, 8, -1.f, 3.f);
  const auto a = u.read(), b = u2.read(), c = u3.read();
  EXPECT_EQ(a, b) << "same seed and offset must repeat";
  EXPECT_NE(a, c) << "another offset must differ";
  double mean = 0, var = 0;
  for (float v : a) {
    EXPECT_GE(v, -1.f);
    EXPECT_LT(v, 3.f);
    mean += v;
  }
  mean /= n;
  for (float v : a) var += (v - mean) * (v - mean);
  var /= n;
  EXPECT_NEAR(mean, 1.0, 0.02);
  EXPECT_NEAR(var, 16.0 / 12.0, 0.02);

  be().random(RandomKind::normal, nrm.view, 1, 0, 2.f, 0.5f);
  mean = var = 0;
  const auto z = nrm.read();
  for (float v : z) mean += v;
  mean /= n;
  for (float v : z) var += (v - mean) * (v - mean);
  var /= n;
  EXPECT_NEAR(mean, 2.0, 0.01);
  EXPECT_NEAR(std::sqrt(var), 0.5, 0.01);

  be().random(RandomKind::keep_mask, mask.view, 3, 0, 0.75f, 0.f);
  int kept = 0;
  for (float v : mask.read()) {
    EXPECT_TRUE(v == 0.f || std::fabs(v - 1.f / 0.75f) < 1e-6f);
    kept += v != 0.f;
  }
  EXPECT_NEAR(double(kept) / n, 0.75, 0.01);
}

// Keras 3's update rules, step by step in double.
struct RefState {
  std::vector<double> p, s0, s1, s2, average;
};

TEST_P(BackendOps, FusedOptimizerUpdates) {
  const std::size_t n = 257;
  struct Config {
    const char* name;
    OptimizerUpdate u;
    int slots;
  };
  auto make = [](OptimizerKind k) {
    OptimizerUpdate u;
    u.kind = k;
    return u;
  };
  std::vector<Config> configs;
  {
    auto u = make(OptimizerKind::sgd);
    u.learning_rate = 0.1f;
    configs.push_back({"sgd", u, 0});
    u.momentum = 0.9f;
    configs.push_back({"sgd momentum", u, 1});
    u.nesterov = true;
    u.weight_decay = 0.01f;
    configs.push_back({"sgd nesterov decay", u, 1});
    u.ema = true;  // the moving average follows the rule's slot
    u.ema_momentum = 0.9f;
    configs.push_back({"sgd nesterov decay ema", u, 2});
  }
  {
    auto u = make(OptimizerKind::adam);
    u.learning_rate = 0.01f;
    configs.push_back({"adam", u, 2});
    u.amsgrad = true;
    configs.push_back({"adam amsgrad", u, 3});
    u.ema = true;
    u.ema_momentum = 0.5f;
    configs.push_back({"adam amsgrad ema", u, 4});
  }
  {
    auto u = make(OptimizerKind::rmsprop);
    u.learning_rate = 0.01f;
    configs.push_back({"rmsprop", u, 1});
    u.momentum = 0.5f;
    u.centered = true;
    configs.push_back({"rmsprop centered momentum", u, 3});
  }
  {
    auto u = make(OptimizerKind::adagrad);
    u.learning_rate = 0.05f;
    configs.push_back({"adagrad", u, 1});
    u.ema = true;
    u.ema_momentum = 0.99f;
    configs.push_back({"adagrad ema", u, 2});
  }
  {
    auto u = make(OptimizerKind::nadam);
    u.learning_rate = 0.01f;
    configs.push_back({"nadam", u, 2});
  }
  {
    auto u = make(OptimizerKind::adamax);
    u.learning_rate = 0.01f;
    configs.push_back({"adamax", u, 2});
    u = make(OptimizerKind::lion);
    u.learning_rate = 0.003f;
    u.beta_2 = 0.99f;
    u.weight_decay = 0.1f;
    configs.push_back({"lion decay", u, 1});
    u = make(OptimizerKind::adadelta);
    u.learning_rate = 0.5f;
    u.rho = 0.95f;
    u.ema = true;
    u.ema_momentum = 0.9f;
    configs.push_back({"adadelta ema", u, 3});
    u = make(OptimizerKind::ftrl);
    u.learning_rate = 0.2f;
    u.lr_power = -0.6f;
    u.l1 = 0.05f;
    u.l2 = 0.1f;
    u.l2_shrinkage = 0.02f;
    u.ftrl_beta = 0.3f;
    configs.push_back({"ftrl regularized", u, 2});
  }
  for (const Config& cfg : configs) {
    SCOPED_TRACE(cfg.name);
    const auto p0 = random_vector(n, -1, 1, 21);
    DeviceTensor p(be(), {std::int64_t(n)}, p0);
    std::vector<DeviceTensor> slots;
    for (int s = 0; s < cfg.slots; ++s) slots.emplace_back(be(), Shape{std::int64_t(n)});
    const bool accumulates = cfg.u.kind == OptimizerKind::adagrad || cfg.u.kind == OptimizerKind::ftrl;
    if (accumulates) be().fill(slots[0].view, 0.1f);
    std::vector<TensorView> sv;
    for (auto& s : slots) sv.push_back(s.view);
    RefState r{std::vector<double>(p0.begin(), p0.end()), std::vector<double>(n, accumulates ? 0.1 : 0.0),
               std::vector<double>(n, 0.0), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    double u_product = 1.0;
    for (int step = 0; step < 4; ++step) {
      const auto g = random_vector(n, -1, 1, 100 + std::uint32_t(step));
      DeviceTensor gt(be(), {std::int64_t(n)}, g);
      OptimizerUpdate u = cfg.u;
      const double t = step + 1, lr = u.learning_rate, b1 = u.beta_1, b2 = u.beta_2, eps = u.epsilon;
      u.adam_alpha = u.kind == OptimizerKind::adamax ? float(lr / (1 - std::pow(b1, t)))
                                                     : float(lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t)));
      const double ut = b1 * (1 - 0.5 * std::pow(0.96, 0.004 * t)), ut1 = b1 * (1 - 0.5 * std::pow(0.96, 0.004 * (t + 1)));
      const double upt = u_product * ut, upt1 = upt * ut1;
      u.nadam_m_coef = float(ut1 / (1 - upt1));
      u.nadam_g_coef = float((1 - ut) / (1 - upt));
      u.nadam_v_coef = float(1 / (1 - std::pow(b2, t)));
      if (u.ema) u.ema_momentum = step == 0 ? 0.f : cfg.u.ema_momentum;  // as the optimizer passes it
      be().optimizer_update(u, p.view, gt.view, sv);
      for (std::size_t i = 0; i < n; ++i) {
        double& w = r.p[i];
        const double gi = g[i];
        w -= w * u.weight_decay * lr;
        switch (u.kind) {
          case OptimizerKind::sgd:
            if (u.momentum > 0) {
              r.s0[i] = u.momentum * r.s0[i] - lr * gi;
              w += u.nesterov ? u.momentum * r.s0[i] - lr * gi : r.s0[i];
            } else {
              w -= lr * gi;
            }
            break;
          case OptimizerKind::adam: {
            r.s0[i] += (gi - r.s0[i]) * (1 - b1);
            r.s1[i] += (gi * gi - r.s1[i]) * (1 - b2);
            double v = r.s1[i];
            if (u.amsgrad) v = r.s2[i] = std::max(r.s2[i], v);
            const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
            w -= alpha * r.s0[i] / (std::sqrt(v) + eps);
            break;
          }
          case OptimizerKind::rmsprop: {
            const double rho = u.rho;
            r.s0[i] = rho * r.s0[i] + (1 - rho) * gi * gi;
            double denom = r.s0[i] + eps;
            if (u.centered) {
              r.s2[i] = rho * r.s2[i] + (1 - rho) * gi;
              denom = r.s0[i] - r.s2[i] * r.s2[i] + eps;
            }
            const double inc = lr * gi / std::sqrt(denom);
            if (u.momentum > 0) {
              r.s1[i] = u.momentum * r.s1[i] + inc;
              w -= r.s1[i];
            } else {
              w -= inc;
            }
            break;
          }
          case OptimizerKind::adagrad:
            r.s0[i] += gi * gi;
            w -= lr * gi / std::sqrt(r.s0[i] + eps);
            break;
          case OptimizerKind::nadam: {
            r.s0[i] += (gi - r.s0[i]) * (1 - b1);
            r.s1[i] += (gi * gi - r.s1[i]) * (1 - b2);
            const double m_hat = ut1 * r.s0[i] / (1 - upt1) + (1 - ut) * gi / (1 - upt);
            const double v_hat = r.s1[i] / (1 - std::pow(b2, t));
            w -= lr * m_hat / (std::sqrt(v_hat) + eps);
            break;
          }
          case OptimizerKind::adamax:
            r.s0[i] += (gi - r.s0[i]) * (1 - b1);
            r.s1[i] = std::max(b2 * r.s1[i], std::abs(gi));
            w -= lr * r.s0[i] / ((1 - std::pow(b1, t)) * (r.s1[i] + eps));
            break;
          case OptimizerKind::lion: {
            const double c = r.s0[i] * b1 + gi * (1 - b1);
            w -= lr * double((c > 0) - (c < 0));
            r.s0[i] = r.s0[i] * b2 + gi * (1 - b2);
            break;
          }
          case OptimizerKind::adadelta: {
            const double rho = u.rho;
            r.s0[i] = rho * r.s0[i] + (1 - rho) * gi * gi;
            const double delta = -std::sqrt(r.s1[i] + eps) * gi / std::sqrt(r.s0[i] + eps);
            r.s1[i] = rho * r.s1[i] + (1 - rho) * delta * delta;
            w += lr * delta;
            break;
          }
          case OptimizerKind::ftrl: {
            const double power = -double(u.lr_power), l1 = u.l1, next = r.s0[i] + gi * gi;
            r.s1[i] += gi + 2 * double(u.l2_shrinkage) * w - (std::pow(next, power) - std::pow(r.s0[i], power)) / lr * w;
            const double quadratic = std::pow(next, power) / lr + 2 * (double(u.l2) + double(u.ftrl_beta) / (2 * lr));
            w = (std::clamp(r.s1[i], -l1, l1) - r.s1[i]) / quadratic;
            r.s0[i] = next;
            break;
          }
          case OptimizerKind::lamb:
          case OptimizerKind::adafactor: break;  // WholeVariableOptimizerUpdatesMatchTheCpuBackend
        }
        if (u.ema) r.average[i] = u.ema_momentum * r.average[i] + (1 - double(u.ema_momentum)) * w;
      }
      u_product = upt;
    }
    expect_close(p.read(), r.p, 1e-5, 1e-4, "parameters after 4 steps");
    if (cfg.u.ema) expect_close(slots.back().read(), r.average, 1e-5, 1e-4, "moving averages after 4 steps");
  }
}

// Lamb and Adafactor reduce over the whole variable (tested against double references in test_optimizers on
// the CPU backend): every backend must give the CPU backend's numbers, over several reduction chunks, a
// factored batch of matrices and an unfactored vector.
TEST_P(BackendOps, WholeVariableOptimizerUpdatesMatchTheCpuBackend) {
  Backend& cpu = get_backend("cpu");
  OptimizerUpdate lamb{.kind = OptimizerKind::lamb, .learning_rate = 0.02f, .weight_decay = 0.1f};
  OptimizerUpdate adafactor{.kind = OptimizerKind::adafactor, .learning_rate = 0.3f, .weight_decay = 0.05f, .clip_threshold = 0.5f};
  for (OptimizerUpdate* u : {&lamb, &adafactor}) {
    u->ema = true;
    u->ema_momentum = 0.9f;
  }
  for (const OptimizerUpdate& base : {lamb, adafactor})
    for (const Shape& shape : {Shape{2500}, Shape{3, 5, 171}, Shape{1}}) {
      const bool factored = base.kind == OptimizerKind::adafactor;
      SCOPED_TRACE(fmt::format("{} {}", factored ? "adafactor" : "lamb", shape.to_string()));
      const std::size_t n = std::size_t(shape.numel());
      std::vector<Shape> slot_shapes{shape, shape};
      if (factored) slot_shapes = {adafactor_row_shape(shape), adafactor_column_shape(shape), shape};
      slot_shapes.push_back(shape);  // the moving average
      const auto p0 = random_vector(n, -1, 1, 31);
      DeviceTensor p(be(), shape, p0), p_cpu(cpu, shape, p0);
      std::vector<DeviceTensor> slots, slots_cpu;
      for (const Shape& s : slot_shapes) {
        slots.emplace_back(be(), s);
        slots_cpu.emplace_back(cpu, s);
      }
      std::vector<TensorView> sv, sv_cpu;
      for (std::size_t i = 0; i < slots.size(); ++i) {
        sv.push_back(slots[i].view);
        sv_cpu.push_back(slots_cpu[i].view);
      }
      for (int step = 0; step < 4; ++step) {
        const auto g = random_vector(n, -1, 1, 200 + std::uint32_t(step));
        DeviceTensor gt(be(), shape, g), gt_cpu(cpu, shape, g);
        OptimizerUpdate u = base;
        const double t = step + 1;
        u.correction_1 = float(1 - std::pow(0.9, t));
        u.correction_2 = float(1 - std::pow(0.999, t));
        u.relative_step = float(std::min(0.3, 1 / std::sqrt(t)));
        u.decay_2 = float(1 - std::pow(t, -0.8));
        u.ema_momentum = step == 0 ? 0.f : base.ema_momentum;
        be().optimizer_update(u, p.view, gt.view, sv);
        cpu.optimizer_update(u, p_cpu.view, gt_cpu.view, sv_cpu);
      }
      const auto want = p_cpu.read();
      expect_close(p.read(), std::vector<double>(want.begin(), want.end()), 1e-6, 1e-4, "parameters after 4 steps");
      for (std::size_t i = 0; i < slots.size(); ++i) {
        const auto slot_want = slots_cpu[i].read();
        expect_close(slots[i].read(), std::vector<double>(slot_want.begin(), slot_want.end()), 1e-6, 1e-4, fmt::format("slot {}", i));
      }
    }
  // Adafactor's factored slots must have their shapes.
  DeviceTensor p(be(), Shape{3, 4}), g(be(), Shape{3, 4}), wrong(be(), Shape{3, 4}), c(be(), Shape{4}), v(be(), Shape{3, 4});
  const std::vector<TensorView> slots = {wrong.view, c.view, v.view};
  EXPECT_THROW(be().optimizer_update(OptimizerUpdate{.kind = OptimizerKind::adafactor}, p.view, g.view, slots), std::invalid_argument);
}

TEST_P(BackendOps, OptimizerUpdateCountsTheMovingAverageSlot) {
  OptimizerUpdate u{.kind = OptimizerKind::adam, .learning_rate = 0.01f, .ema = true};
  DeviceTensor p(be(), Shape{3}), g(be(), Shape{3}), m(be(), Shape{3}), v(be(), Shape{3});
  const std::vector<TensorView> rule_slots_only = {m.view, v.view};
  try {
    be().optimizer_update(u, p.view, g.view, rule_slots_only);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected 3 slots, got 2"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps, ::testing::ValuesIn(available_backends()), backend_name);

TEST(BackendRegistry, UnknownNameListsTheAvailableOnes) {
  try {
    get_backend("tpu");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown backend 'tpu'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata::test
