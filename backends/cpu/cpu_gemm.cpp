// GEMM through Eigen's matrix product; Eigen parallelises large products over the OpenMP pool itself.
#include <Eigen/Core>
#include <fmt/format.h>

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

}  // namespace

void CpuBackend::gemm(const GemmArgs& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 1)
    throw std::invalid_argument(fmt::format("cpu gemm: invalid sizes m={} n={} k={} batch={}", g.m, g.n, g.k, g.batch));
  if (g.m == 0 || g.n == 0) return;
  if (g.batch == 1) {
    single_gemm(g, g.a, g.b, g.c);
    return;
  }
  // Many small products: one per thread; Eigen sees it is inside a parallel region and stays serial.
  parallel_for(g.batch, g.m * g.n * std::max<std::int64_t>(g.k, 1), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      single_gemm(g, g.a + i * g.stride_a, g.b + i * g.stride_b, g.c + i * g.stride_c);
  });
}

}  // namespace strata::cpu
