// Scalar functions shared by every kernel of the device backend: element formulas, 16-bit float
// conversions and atomics. Each compiles for the GPU (nvcc) and for the host, where the test suite runs the
// same kernels one element at a time (see device_backend.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backends/backend.h"
#include "backends/host_device.h"

namespace strata::device {

// The element formulas are the CPU backend's (backends/cpu/cpu_elementwise.cpp), so that both backends
// compute the same function; the constants are written out once here for the device.
inline constexpr float kSeluAlpha = 1.6732632423543772f;
inline constexpr float kSeluScale = 1.0507009873554805f;
inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kInvSqrt2 = 0.7071067811865476f;
inline constexpr float kInvSqrt2Pi = 0.3989422804014327f;
inline constexpr float kGeluCubic = 0.044715f;
inline constexpr float kTwoOverSqrtPi = 1.1283791670955126f;

STRATA_HOST_DEVICE inline float sigmoidf(float v) { return 1.f / (1.f + expf(-v)); }

STRATA_HOST_DEVICE inline float unary_value(UnaryOp op, float v, float alpha) {
  switch (op) {
    case UnaryOp::negative: return -v;
    case UnaryOp::abs: return fabsf(v);
    case UnaryOp::sign: return float((v > 0.f) - (v < 0.f));
    case UnaryOp::exp: return expf(v);
    case UnaryOp::log: return logf(v);
    case UnaryOp::log1p: return log1pf(v);
    case UnaryOp::sqrt: return sqrtf(v);
    case UnaryOp::rsqrt: return 1.f / sqrtf(v);
    case UnaryOp::square: return v * v;
    case UnaryOp::reciprocal: return 1.f / v;
    case UnaryOp::erf: return erff(v);
    case UnaryOp::relu: return v > 0.f ? v : 0.f;
    case UnaryOp::sigmoid: return sigmoidf(v);
    case UnaryOp::tanh: return tanhf(v);
    case UnaryOp::gelu: return 0.5f * v * (1.f + erff(v * kInvSqrt2));
    case UnaryOp::gelu_tanh: return 0.5f * v * (1.f + tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
    case UnaryOp::elu: return v > 0.f ? v : alpha * expm1f(v);
    case UnaryOp::selu: return kSeluScale * (v > 0.f ? v : kSeluAlpha * expm1f(v));
    case UnaryOp::softplus: return log1pf(expf(-fabsf(v))) + (v > 0.f ? v : 0.f);
    case UnaryOp::softsign: return v / (1.f + fabsf(v));
    case UnaryOp::leaky_relu: return v > 0.f ? v : alpha * v;
    case UnaryOp::silu: return v * sigmoidf(v);
    case UnaryOp::hard_sigmoid: {
      const float h = v / 6.f + 0.5f;
      return h < 0.f ? 0.f : (h > 1.f ? 1.f : h);
    }
    case UnaryOp::sin: return sinf(v);
    case UnaryOp::cos: return cosf(v);
  }
  return 0.f;
}

// d op(v) / dv, from the input v and, for the ops whose derivative is cheaper from it, the output o.
STRATA_HOST_DEVICE inline float unary_derivative(UnaryOp op, float v, float o, float alpha) {
  switch (op) {
    case UnaryOp::negative: return -1.f;
    case UnaryOp::abs: return float((v > 0.f) - (v < 0.f));
    case UnaryOp::sign: return 0.f;
    case UnaryOp::exp: return o;
    case UnaryOp::log: return 1.f / v;
    case UnaryOp::log1p: return 1.f / (1.f + v);
    case UnaryOp::sqrt: return 0.5f / o;
    case UnaryOp::rsqrt: return -0.5f * o * o * o;
    case UnaryOp::square: return 2.f * v;
    case UnaryOp::reciprocal: return -o * o;
    case UnaryOp::erf: return kTwoOverSqrtPi * expf(-v * v);
    case UnaryOp::relu: return v > 0.f ? 1.f : 0.f;
    case UnaryOp::sigmoid: return o * (1.f - o);
    case UnaryOp::tanh: return 1.f - o * o;
    case UnaryOp::gelu: return 0.5f * (1.f + erff(v * kInvSqrt2)) + v * kInvSqrt2Pi * expf(-0.5f * v * v);
    case UnaryOp::gelu_tanh: {
      const float t = tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
      return 0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * v * v);
    }
    case UnaryOp::elu: return v > 0.f ? 1.f : alpha * expf(v);
    case UnaryOp::selu: return kSeluScale * (v > 0.f ? 1.f : kSeluAlpha * expf(v));
    case UnaryOp::softplus: return sigmoidf(v);
    case UnaryOp::softsign: {
      const float d = 1.f + fabsf(v);
      return 1.f / (d * d);
    }
    case UnaryOp::leaky_relu: return v > 0.f ? 1.f : alpha;
    case UnaryOp::silu: {
      const float s = sigmoidf(v);
      return s * (1.f + v * (1.f - s));
    }
    case UnaryOp::hard_sigmoid: return (v > -3.f && v < 3.f) ? 1.f / 6.f : 0.f;
    case UnaryOp::sin: return cosf(v);
    case UnaryOp::cos: return -sinf(v);
  }
  return 0.f;
}

STRATA_HOST_DEVICE inline float binary_value(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::subtract: return x - y;
    case BinaryOp::multiply: return x * y;
    case BinaryOp::divide: return x / y;
    case BinaryOp::power: return powf(x, y);
    case BinaryOp::maximum: return x >= y ? x : y;
    case BinaryOp::minimum: return x <= y ? x : y;
    case BinaryOp::greater: return float(x > y);
    case BinaryOp::greater_equal: return float(x >= y);
    case BinaryOp::less: return float(x < y);
    case BinaryOp::less_equal: return float(x <= y);
    case BinaryOp::equal: return float(x == y);
    case BinaryOp::not_equal: return float(x != y);
  }
  return 0.f;
}

STRATA_HOST_DEVICE inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

STRATA_HOST_DEVICE inline float bits_float(std::uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

// IEEE binary16, rounded to nearest even (as Eigen::half on the CPU).
STRATA_HOST_DEVICE inline std::uint16_t float_to_half(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t abs = u & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return std::uint16_t(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));  // inf, NaN
  if (abs >= 0x477FF000u) return std::uint16_t(sign | 0x7C00u);  // rounds past the largest half: inf
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): add 0.5 so that the float adder rounds the shifted mantissa to nearest even.
    const float scaled = bits_float(abs) + 0.5f;
    return std::uint16_t(sign | (float_bits(scaled) - 0x3F000000u));
  }
  const std::uint32_t odd = (abs >> 13) & 1u;
  return std::uint16_t(sign | ((abs + 0xC8000FFFu + odd) >> 13));  // rebias exponent (-112 << 23) and round
}

STRATA_HOST_DEVICE inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  if (exponent == 0x1Fu) return bits_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) return (sign ? -1.f : 1.f) * float(mantissa) * 5.9604644775390625e-8f;  // 2^-24
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// bfloat16: the high half of a float, rounded to nearest even; NaN stays NaN.
STRATA_HOST_DEVICE inline std::uint16_t float_to_bfloat16(float f) {
  const std::uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

STRATA_HOST_DEVICE inline float bfloat16_to_float(std::uint16_t b) { return bits_float(std::uint32_t(b) << 16); }

// Element i of a tensor of any dtype, as float (how the CPU backend converts between types).
STRATA_HOST_DEVICE inline float load_as_float(const void* p, DType t, std::int64_t i) {
  switch (t) {
    case DType::float32: return static_cast<const float*>(p)[i];
    case DType::float16: return half_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::bfloat16: return bfloat16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::int32: return float(static_cast<const std::int32_t*>(p)[i]);
    case DType::int64: return float(static_cast<const std::int64_t*>(p)[i]);
    case DType::uint8: return float(static_cast<const std::uint8_t*>(p)[i]);
  }
  return 0.f;
}

STRATA_HOST_DEVICE inline void store_from_float(void* p, DType t, std::int64_t i, float v) {
  switch (t) {
    case DType::float32: static_cast<float*>(p)[i] = v; return;
    case DType::float16: static_cast<std::uint16_t*>(p)[i] = float_to_half(v); return;
    case DType::bfloat16: static_cast<std::uint16_t*>(p)[i] = float_to_bfloat16(v); return;
    case DType::int32: static_cast<std::int32_t*>(p)[i] = std::int32_t(v); return;
    case DType::int64: static_cast<std::int64_t*>(p)[i] = std::int64_t(v); return;
    case DType::uint8: static_cast<std::uint8_t*>(p)[i] = std::uint8_t(v); return;
  }
}

STRATA_HOST_DEVICE inline std::int64_t load_index(const void* p, DType t, std::int64_t i) {
  return t == DType::int64 ? static_cast<const std::int64_t*>(p)[i] : std::int64_t(static_cast<const std::int32_t*>(p)[i]);
}

// Copies one element of `size` bytes (1, 2, 4 or 8).
STRATA_HOST_DEVICE inline void copy_element(void* dst, const void* src, std::size_t size) {
  switch (size) {
    case 1: *static_cast<std::uint8_t*>(dst) = *static_cast<const std::uint8_t*>(src); return;
    case 2: *static_cast<std::uint16_t*>(dst) = *static_cast<const std::uint16_t*>(src); return;
    case 4: *static_cast<std::uint32_t*>(dst) = *static_cast<const std::uint32_t*>(src); return;
    default: *static_cast<std::uint64_t*>(dst) = *static_cast<const std::uint64_t*>(src); return;
  }
}

// Several threads may add into one element (scatter_add); the host runs kernels one element at a time.
STRATA_HOST_DEVICE inline void atomic_add(float* p, float v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
  *p += v;
#endif
}

// Floor of a / b for b > 0, also for negative a.
STRATA_HOST_DEVICE inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

}  // namespace strata::device
