// The CUDA backend's kernels (backends/cuda/device_backend.h) run on the host, one index after another,
// registered as the backend "cuda_on_host". The op tests and the CUDA-against-CPU comparisons run on it in
// every build, so the kernels' index arithmetic and formulas are checked on machines without a GPU; what
// it cannot check is the CUDA layer itself (launches, streams, cuBLAS), which the "cuda" backend's tests do
// where a GPU is present.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>

#include "backends/cuda/device_backend.h"

namespace strata::test {

class HostDevice {
 public:
  template <class F>
  void launch(std::int64_t n, F f) {
    for (std::int64_t i = 0; i < n; ++i) f(i);
  }
  void* malloc(std::size_t bytes) { return std::aligned_alloc(256, (bytes + 255) / 256 * 256); }
  void free(void* p) { std::free(p); }
  void to_device(void* dst, const void* host, std::size_t bytes) { std::memcpy(dst, host, bytes); }
  void to_host(void* host, const void* src, std::size_t bytes) { std::memcpy(host, src, bytes); }
  void device_copy(void* dst, const void* src, std::size_t bytes) { std::memmove(dst, src, bytes); }
  void synchronize() {}
  // The definition of GEMM, in double: what cuBLAS computes, without its blocking.
  void gemm(const GemmArgs& g) {
    for (std::int64_t b = 0; b < g.batch; ++b) {
      const float* a = g.a + b * g.stride_a;
      const float* bm = g.b + b * g.stride_b;
      float* c = g.c + b * g.stride_c;
      for (std::int64_t i = 0; i < g.m; ++i)
        for (std::int64_t j = 0; j < g.n; ++j) {
          double acc = 0;
          for (std::int64_t k = 0; k < g.k; ++k)
            acc += double(g.transpose_a ? a[k * g.lda + i] : a[i * g.lda + k]) *
                   double(g.transpose_b ? bm[j * g.ldb + k] : bm[k * g.ldb + j]);
          float& out = c[i * g.ldc + j];
          out = float(g.alpha * acc + (g.beta == 0.f ? 0.0 : double(g.beta) * out));
        }
    }
  }
  std::optional<MemoryBudget> memory_available() const { return host_memory_available(); }
};

inline constexpr const char* kDeviceOnHost = "cuda_on_host";

inline void register_device_on_host() {
  register_backend(kDeviceOnHost, [] { return std::unique_ptr<Backend>(new device::DeviceBackend<HostDevice>(kDeviceOnHost)); });
}

}  // namespace strata::test
