// Element-wise primitives of the CPU backend.
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"

namespace strata::cpu {

namespace {

constexpr float kSeluAlpha = 1.6732632423543772f;
constexpr float kSeluScale = 1.0507009873554805f;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kTwoOverSqrtPi = 1.1283791670955126f;

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

void check_same(const TensorView& a, const TensorView& b, const char* what) {
  if (a.dtype != DType::float32 || b.dtype != DType::float32)
    throw std::invalid_argument(fmt::format("cpu {}: expects float32 tensors", what));
  if (a.numel() != b.numel())
    throw std::invalid_argument(
        fmt::format("cpu {}: shapes {} and {} differ", what, a.shape.to_string(), b.shape.to_string()));
}

template <class F>
void map1(const TensorView& x, const TensorView& y, F f) {
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  parallel_for(x.numel(), 4, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) yp[i] = f(xp[i]);
  });
}

// dx[i] = dy[i] * f(x[i], y[i]).
template <class F>
void map_backward(const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx, F f) {
  const float* xp = x.as<const float>();
  const float* yp = y.data ? y.as<const float>() : nullptr;
  const float* dyp = dy.as<const float>();
  float* dxp = dx.as<float>();
  parallel_for(dx.numel(), 4, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) dxp[i] = dyp[i] * f(xp ? xp[i] : 0.f, yp ? yp[i] : 0.f);
  });
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const TensorView& x, const TensorView& y, float alpha) {
  check_same(x, y, "unary");
  switch (op) {
    case UnaryOp::negative: return map1(x, y, [](float v) { return -v; });
    case UnaryOp::abs: return map1(x, y, [](float v) { return std::fabs(v); });
    case UnaryOp::sign: return map1(x, y, [](float v) { return float((v > 0.f) - (v < 0.f)); });
    case UnaryOp::exp: return map1(x, y, [](float v) { return std::exp(v); });
    case UnaryOp::log: return map1(x, y, [](float v) { return std::log(v); });
    case UnaryOp::log1p: return map1(x, y, [](float v) { return std::log1p(v); });
    case UnaryOp::sqrt: return map1(x, y, [](float v) { return std::sqrt(v); });
    case UnaryOp::rsqrt: return map1(x, y, [](float v) { return 1.f / std::sqrt(v); });
    case UnaryOp::square: return map1(x, y, [](float v) { return v * v; });
    case UnaryOp::reciprocal: return map1(x, y, [](float v) { return 1.f / v; });
    case UnaryOp::erf: return map1(x, y, [](float v) { return std::erf(v); });
    case UnaryOp::relu: return map1(x, y, [](float v) { return v > 0.f ? v : 0.f; });
    case UnaryOp::sigmoid: return map1(x, y, [](float v) { return sigmoid(v); });
    case UnaryOp::tanh: return map1(x, y, [](float v) { return std::tanh(v); });
    case UnaryOp::gelu: return map1(x, y, [](float v) { return 0.5f * v * (1.f + std::erf(v * kInvSqrt2)); });
    case UnaryOp::gelu_tanh:
      return map1(x, y, [](float v) {
        return 0.5f * v * (1.f + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
      });
    case UnaryOp::elu: return map1(x, y, [alpha](float v) { return v > 0.f ? v : alpha * std::expm1(v); });
    case UnaryOp::selu:
      return map1(x, y, [](float v) { return kSeluScale * (v > 0.f ? v : kSeluAlpha * std::expm1(v)); });
    case UnaryOp::softplus:
      return map1(x, y, [](float v) { return std::log1p(std::exp(-std::fabs(v))) + std::max(v, 0.f); });
    case UnaryOp::softsign: return map1(x, y, [](float v) { return v / (1.f + std::fabs(v)); });
    case UnaryOp::leaky_relu: return map1(x, y, [alpha](float v) { return v > 0.f ? v : alpha * v; });
    case UnaryOp::silu: return map1(x, y, [](float v) { return v * sigmoid(v); });
    case UnaryOp::hard_sigmoid:
      return map1(x, y, [](float v) { return std::min(1.f, std::max(0.f, v / 6.f + 0.5f)); });
    case UnaryOp::sin: return map1(x, y, [](float v) { return std::sin(v); });
    case UnaryOp::cos: return map1(x, y, [](float v) { return std::cos(v); });
  }
}

void CpuBackend::unary_backward(UnaryOp op, const TensorView& x, const TensorView& y, const TensorView& dy,
                                const TensorView& dx, float alpha) {
  check_same(dy, dx, "unary_backward");
  switch (op) {
    case UnaryOp::negative: return map_backward(x, y, dy, dx, [](float, float) { return -1.f; });
    case UnaryOp::abs: return map_backward(x, y, dy, dx, [](float v, float) { return float((v > 0.f) - (v < 0.f)); });
    case UnaryOp::sign: return map_backward(x, y, dy, dx, [](float, float) { return 0.f; });
    case UnaryOp::exp: return map_backward(x, y, dy, dx, [](float, float o) { return o; });
    case UnaryOp::log: return map_backward(x, y, dy, dx, [](float v, float) { return 1.f / v; });
    case UnaryOp::log1p: return map_backward(x, y, dy, dx, [](float v, float) { return 1.f / (1.f + v); });
    case UnaryOp::sqrt: return map_backward(x, y, dy, dx, [](float, float o) { return 0.5f / o; });
    case UnaryOp::rsqrt: return map_backward(x, y, dy, dx, [](float, float o) { return -0.5f * o * o * o; });
    case UnaryOp::square: return map_backward(x, y, dy, dx, [](float v, float) { return 2.f * v; });
    case UnaryOp::reciprocal: return map_backward(x, y, dy, dx, [](float, float o) { return -o * o; });
    case UnaryOp::erf:
      return map_backward(x, y, dy, dx, [](float v, float) { return kTwoOverSqrtPi * std::exp(-v * v); });
    case UnaryOp::relu: return map_backward(x, y, dy, dx, [](float v, float) { return v > 0.f ? 1.f : 0.f; });
    case UnaryOp::sigmoid: return map_backward(x, y, dy, dx, [](float, float o) { return o * (1.f - o); });
    case UnaryOp::tanh: return map_backward(x, y, dy, dx, [](float, float o) { return 1.f - o * o; });
    case UnaryOp::gelu:
      return map_backward(x, y, dy, dx, [](float v, float) {
        return 0.5f * (1.f + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5f * v * v);
      });
    case UnaryOp::gelu_tanh:
      return map_backward(x, y, dy, dx, [](float v, float) {
        const float t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
        return 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * v * v);
      });
    case UnaryOp::elu:
      return map_backward(x, y, dy, dx, [alpha](float v, float) { return v > 0.f ? 1.f : alpha * std::exp(v); });
    case UnaryOp::selu:
      return map_backward(x, y, dy, dx,
                          [](float v, float) { return kSeluScale * (v > 0.f ? 1.f : kSeluAlpha * std::exp(v)); });
    case UnaryOp::softplus: return map_backward(x, y, dy, dx, [](float v, float) { return sigmoid(v); });
    case UnaryOp::softsign:
      return map_backward(x, y, dy, dx, [](float v, float) {
        const float d = 1.f + std::fabs(v);
        return 1.f / (d * d);
      });
    case UnaryOp::leaky_relu:
      return map_backward(x, y, dy, dx, [alpha](float v, float) { return v > 0.f ? 1.f : alpha; });
    case UnaryOp::silu:
      return map_backward(x, y, dy, dx, [](float v, float) {
        const float s = sigmoid(v);
        return s * (1.f + v * (1.f - s));
      });
    case UnaryOp::hard_sigmoid:
      return map_backward(x, y, dy, dx, [](float v, float) { return (v > -3.f && v < 3.f) ? 1.f / 6.f : 0.f; });
    case UnaryOp::sin: return map_backward(x, y, dy, dx, [](float v, float) { return std::cos(v); });
    case UnaryOp::cos: return map_backward(x, y, dy, dx, [](float v, float) { return -std::sin(v); });
  }
}

namespace {

// out = f(a, b) with a and b broadcast to out's shape through zero strides.
template <class F>
void broadcast_binary(const TensorView& a, const TensorView& b, const TensorView& out, F f) {
  const float* ap = a.as<const float>();
  const float* bp = b.as<const float>();
  float* op = out.as<float>();
  const std::int64_t n = out.numel();
  if (n == 0) return;
  const std::int64_t na = a.numel(), nb = b.numel();
  if (na == n && nb == n) {
    parallel_for(n, 2, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) op[i] = f(ap[i], bp[i]);
    });
    return;
  }
  if (nb == 1) {
    const float bv = bp[0];
    parallel_for(n, 2, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) op[i] = f(ap[i], bv);
    });
    return;
  }
  if (na == 1) {
    const float av = ap[0];
    parallel_for(n, 2, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) op[i] = f(av, bp[i]);
    });
    return;
  }
  // General case: merge neighbouring dimensions that broadcast the same way, then loop rows of the last one.
  const int rank = out.shape.rank();
  std::int64_t dims[kMaxRank], sa[kMaxRank], sb[kMaxRank];
  int r = 0;
  {
    const auto ca = contiguous_strides(a.shape), cb = contiguous_strides(b.shape);
    for (int i = 0; i < rank; ++i) {
      const std::int64_t d = out.shape[i];
      if (d == 1) continue;
      const std::int64_t stride_a = a.shape[i] == 1 ? 0 : ca[std::size_t(i)];
      const std::int64_t stride_b = b.shape[i] == 1 ? 0 : cb[std::size_t(i)];
      if (r > 0 && (sa[r - 1] == 0) == (stride_a == 0) && (sb[r - 1] == 0) == (stride_b == 0) &&
          sa[r - 1] == stride_a * d && sb[r - 1] == stride_b * d) {
        dims[r - 1] *= d;
        sa[r - 1] = stride_a;
        sb[r - 1] = stride_b;
      } else {
        dims[r] = d;
        sa[r] = stride_a;
        sb[r] = stride_b;
        ++r;
      }
    }
  }
  if (r == 0) {
    op[0] = f(ap[0], bp[0]);
    return;
  }
  const std::int64_t inner = dims[r - 1], ia = sa[r - 1], ib = sb[r - 1];
  const std::int64_t rows = n / inner;
  parallel_for(rows, inner * 2, [&](std::int64_t s, std::int64_t e) {
    for (std::int64_t row = s; row < e; ++row) {
      std::int64_t rem = row, oa = 0, ob = 0;
      for (int ax = r - 2; ax >= 0; --ax) {
        const std::int64_t idx = rem % dims[ax];
        rem /= dims[ax];
        oa += idx * sa[ax];
        ob += idx * sb[ax];
      }
      const float* pa = ap + oa;
      const float* pb = bp + ob;
      float* po = op + row * inner;
      if (ia == 1 && ib == 1) {
        for (std::int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], pb[j]);
      } else if (ia == 1 && ib == 0) {
        const float bv = pb[0];
        for (std::int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], bv);
      } else if (ia == 0 && ib == 1) {
        const float av = pa[0];
        for (std::int64_t j = 0; j < inner; ++j) po[j] = f(av, pb[j]);
      } else {
        for (std::int64_t j = 0; j < inner; ++j) po[j] = f(pa[j * ia], pb[j * ib]);
      }
    }
  });
}

}  // namespace

void CpuBackend::binary(BinaryOp op, const TensorView& a, const TensorView& b, const TensorView& out) {
  if (a.dtype != DType::float32 || b.dtype != DType::float32 || out.dtype != DType::float32)
    throw std::invalid_argument(fmt::format("cpu binary {}: expects float32 tensors", binary_op_name(op)));
  const int rank = out.shape.rank();
  if (a.shape.rank() != rank || b.shape.rank() != rank)
    throw std::invalid_argument(fmt::format("cpu binary {}: operands {} and {} must have the rank of output {}",
                                            binary_op_name(op), a.shape.to_string(), b.shape.to_string(),
                                            out.shape.to_string()));
  for (int i = 0; i < rank; ++i) {
    if ((a.shape[i] != out.shape[i] && a.shape[i] != 1) || (b.shape[i] != out.shape[i] && b.shape[i] != 1))
      throw std::invalid_argument(fmt::format("cpu binary {}: {} and {} do not broadcast to {}", binary_op_name(op),
                                              a.shape.to_string(), b.shape.to_string(), out.shape.to_string()));
  }
  switch (op) {
    case BinaryOp::add: return broadcast_binary(a, b, out, [](float x, float y) { return x + y; });
    case BinaryOp::subtract: return broadcast_binary(a, b, out, [](float x, float y) { return x - y; });
    case BinaryOp::multiply: return broadcast_binary(a, b, out, [](float x, float y) { return x * y; });
    case BinaryOp::divide: return broadcast_binary(a, b, out, [](float x, float y) { return x / y; });
    case BinaryOp::power: return broadcast_binary(a, b, out, [](float x, float y) { return std::pow(x, y); });
    case BinaryOp::maximum: return broadcast_binary(a, b, out, [](float x, float y) { return x >= y ? x : y; });
    case BinaryOp::minimum: return broadcast_binary(a, b, out, [](float x, float y) { return x <= y ? x : y; });
    case BinaryOp::greater: return broadcast_binary(a, b, out, [](float x, float y) { return float(x > y); });
    case BinaryOp::greater_equal: return broadcast_binary(a, b, out, [](float x, float y) { return float(x >= y); });
    case BinaryOp::less: return broadcast_binary(a, b, out, [](float x, float y) { return float(x < y); });
    case BinaryOp::less_equal: return broadcast_binary(a, b, out, [](float x, float y) { return float(x <= y); });
    case BinaryOp::equal: return broadcast_binary(a, b, out, [](float x, float y) { return float(x == y); });
    case BinaryOp::not_equal: return broadcast_binary(a, b, out, [](float x, float y) { return float(x != y); });
  }
}

}  // namespace strata::cpu
