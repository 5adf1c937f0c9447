// GEMM through Eigen's matrix product; Eigen parallelises large products over the OpenMP pool itself.
#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"

namespace strata::cpu {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class A, class B>
void product(MutMap& c, const A& a, const B& b, float alpha, float beta) {
  if (beta == 0.f) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != 1.f) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

void single_gemm(const GemmArgs& g, const float* a, const float* b, float* c) {
  MutMap cm(c, g.m, g.n, Eigen::OuterStride<>(g.ldc));
  if (g.k == 0) {
    if (g.beta == 0.f) cm.setZero(); else cm *= g.beta;
    return;
  }
  ConstMap am(a, g.transpose_a ? g.k : g.m, g.transpose_a ? g.m : g.k, Eigen::OuterStride<>(g.lda));
  ConstMap bm(b, g.transpose_b ? g.n : g.k, g.transpose_b ? g.k : g.n, Eigen::OuterStride<>(g.ldb));
  if (!g.transpose_a && !g.transpose_b) product(cm, am, bm, g.alpha, g.beta);
  else if (g.transpose_a && !g.transpose_b) product(cm, am.transpose(), bm, g.alpha, g.beta);
  else if (!g.transpose_a && g.transpose_b) product(cm, am, bm.transpose(), g.alpha, g.beta);
  else product(cm, am.transpose(), bm.transpose(), g.alpha, g.beta);
}

// A product with few rows (predicting one sample, say) is a pass over B: each task keeps a block of C's
// columns in registers while it streams B's rows, and tasks split the columns, so each core reads only
// its share of B. Eigen's matrix-vector path reads B in a less friendly order for row-major operands.
constexpr std::int64_t kFewRows = 4;
constexpr std::int64_t kColumnBlock = 64;

// Sixteen floats as one value, so that the accumulators of a block stay in registers.
typedef float Lanes __attribute__((vector_size(64)));

inline Lanes load_lanes(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// acc[0..63] = sum over i of a[i] * b[i, 0..63].
void accumulate_full_block(const float* a, const float* b, std::int64_t ldb, std::int64_t k, float* out) {
  Lanes acc0{}, acc1{}, acc2{}, acc3{};
  for (std::int64_t i = 0; i < k; ++i) {
    const float* row = b + i * ldb;
    const float av = a[i];
    acc0 += av * load_lanes(row);
    acc1 += av * load_lanes(row + 16);
    acc2 += av * load_lanes(row + 32);
    acc3 += av * load_lanes(row + 48);
  }
  std::memcpy(out, &acc0, sizeof(Lanes));
  std::memcpy(out + 16, &acc1, sizeof(Lanes));
  std::memcpy(out + 32, &acc2, sizeof(Lanes));
  std::memcpy(out + 48, &acc3, sizeof(Lanes));
}

void accumulate_partial_block(const float* a, const float* b, std::int64_t ldb, std::int64_t k, std::int64_t width, float* out) {
  for (std::int64_t j = 0; j < width; ++j) out[j] = 0.f;
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < width; ++j) out[j] += a[i] * b[i * ldb + j];
}

void few_rows_gemm(const GemmArgs& g) {
  const std::int64_t blocks = (g.n + kColumnBlock - 1) / kColumnBlock;
  parallel_for(blocks, g.m * g.k * kColumnBlock, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t block = begin; block < end; ++block) {
      const std::int64_t j0 = block * kColumnBlock, width = std::min(kColumnBlock, g.n - j0);
      for (std::int64_t r = 0; r < g.m; ++r) {
        alignas(64) float acc[kColumnBlock];
        if (width == kColumnBlock) accumulate_full_block(g.a + r * g.lda, g.b + j0, g.ldb, g.k, acc);
        else accumulate_partial_block(g.a + r * g.lda, g.b + j0, g.ldb, g.k, width, acc);
        float* crow = g.c + r * g.ldc + j0;
        for (std::int64_t j = 0; j < width; ++j) crow[j] = g.alpha * acc[j] + (g.beta == 0.f ? 0.f : g.beta * crow[j]);
      }
    }
  });
}

}  // namespace

void CpuBackend::gemm(const GemmArgs& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 1)
    throw std::invalid_argument(fmt::format("cpu gemm: invalid sizes m={} n={} k={} batch={}", g.m, g.n, g.k, g.batch));
  if (g.m == 0 || g.n == 0) return;
  if (g.batch == 1) {
    if (g.m <= kFewRows && !g.transpose_a && !g.transpose_b && g.k > 0) few_rows_gemm(g);
    else single_gemm(g, g.a, g.b, g.c);
    return;
  }
  // Many small products: one per thread; Eigen sees it is inside a parallel region and stays serial.
  parallel_for(g.batch, g.m * g.n * std::max<std::int64_t>(g.k, 1), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      single_gemm(g, g.a + i * g.stride_a, g.b + i * g.stride_b, g.c + i * g.stride_c);
  });
}

}  // namespace strata::cpu
