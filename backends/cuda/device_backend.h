// Every Backend primitive written once as data-parallel kernels over a Device, which the CUDA backend
// (cuda_backend.cu) provides with CUDA launches, cudaMalloc and cuBLAS.
//
// A kernel here is a lambda run for each index i in [0, n): device_.launch(n, kernel). The Device concept:
//   template <class F> void launch(std::int64_t n, F f);   f(i) for every i in [0, n), in any order
//   void* malloc(std::size_t bytes);                         nullptr when out of memory
//   void free(void* p);
//   void to_device(void* dst, const void* host, std::size_t bytes);   returns once `host` may be reused
//   void to_host(void* host, const void* src, std::size_t bytes);     returns once `host` holds the bytes
//   void device_copy(void* dst, const void* src, std::size_t bytes);
//   void synchronize();
//   void gemm(const GemmArgs& args);                         row-major, as Backend::gemm
//   std::optional<MemoryBudget> memory_available() const;
// and, optionally, device collectives for data-parallel training:
//   std::vector<std::byte> collective_unique_id();
//   std::unique_ptr<DeviceCollective> join_collective(std::span<const std::byte> id, int rank, int processes);
// Kernels read only what they capture by value (pointers, sizes, Dims), so the same code runs on the host
// one index at a time: the test suite builds this class over a host Device and runs the backend op
// tests on it, which checks the index arithmetic and formulas of every kernel on machines without a GPU.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/device_math.h"
#include "backends/kernel_geometry.h"
#include "backends/philox.h"
#include "backends/reduce_rules.h"

namespace strata::device {

// Dimensions or strides by value, so that kernels can capture them.
struct Dims {
  std::int64_t v[kMaxRank] = {};
};

inline Dims dims_of(const Shape& s) {
  Dims d;
  for (int i = 0; i < s.rank(); ++i) d.v[i] = s[i];
  return d;
}

inline Dims strides_of(const std::array<std::int64_t, kMaxRank>& s) {
  Dims d;
  for (int i = 0; i < kMaxRank; ++i) d.v[i] = s[std::size_t(i)];
  return d;
}

template <class Device>
class DeviceBackend : public Backend {
 public:
  template <class... Args>
  explicit DeviceBackend(std::string name, Args&&... args) : name_(std::move(name)), device_(std::forward<Args>(args)...) {}

  ~DeviceBackend() override {
    for (auto& [bytes, blocks] : free_blocks_)
      for (void* p : blocks) device_.free(p);
    for (auto& [p, bytes] : sizes_) device_.free(p);  // blocks still held by their owners at exit
  }

  std::string_view name() const override { return name_; }
  Device& device() { return device_; }

  // ---- storage: a caching allocator, so that a training step that frees and asks again allocates nothing ----
  void* allocate(std::size_t bytes) override {
    const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
    std::lock_guard lock(mutex_);
    record_allocation(rounded);
    if (auto it = free_blocks_.find(rounded); it != free_blocks_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= rounded;
      sizes_[p] = rounded;
      return p;
    }
    void* p = device_.malloc(rounded);
    if (!p) {
      release_cached();
      p = device_.malloc(rounded);
    }
    if (!p) {
      record_deallocation(rounded);
      const auto budget = device_.memory_available();
      throw OutOfMemoryError(fmt::format("the {} backend could not allocate {}{}", name_, format_bytes(rounded),
                                         budget ? fmt::format(" ({} free)", format_bytes(budget->bytes)) : ""));
    }
    sizes_[p] = rounded;
    return p;
  }

  void deallocate(void* p) override {
    if (!p) return;
    std::lock_guard lock(mutex_);
    const auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    record_deallocation(it->second);
    // Work already issued may still read the block; later work that reuses it is ordered after on the
    // same stream, so the block can be handed out again at once.
    free_blocks_[it->second].push_back(p);
    cached_bytes_ += it->second;
    sizes_.erase(it);
  }

  std::optional<MemoryBudget> memory_available() const override {
    auto budget = device_.memory_available();
    std::lock_guard lock(mutex_);
    if (budget) budget->bytes += cached_bytes_;
    return budget;
  }

  void copy_to_device(void* dst, const void* host_src, std::size_t bytes) override {
    if (bytes) device_.to_device(dst, host_src, bytes);
  }
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes) device_.to_host(host_dst, src, bytes);
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes && dst != src) device_.device_copy(dst, src, bytes);
  }
  void synchronize() override { device_.synchronize(); }

  std::vector<std::byte> collective_unique_id() override {
    if constexpr (requires { device_.collective_unique_id(); })
      return device_.collective_unique_id();
    else
      return {};
  }
  std::unique_ptr<DeviceCollective> join_collective(std::span<const std::byte> id, int rank, int processes) override {
    if constexpr (requires { device_.join_collective(id, rank, processes); })
      return device_.join_collective(id, rank, processes);
    else
      return Backend::join_collective(id, rank, processes);
  }

  // ---- element-wise ----
  void fill(const TensorView& out, Scalar value) override {
    void* p = out.data;
    const DType t = out.dtype;
    const std::int64_t n = out.numel();
    switch (t) {
      case DType::int64: {
        const std::int64_t v = value.to_int();
        return device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { static_cast<std::int64_t*>(p)[i] = v; });
      }
      case DType::int32: {
        const std::int32_t v = std::int32_t(value.to_int());
        return device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { static_cast<std::int32_t*>(p)[i] = v; });
      }
      case DType::uint8: {
        const std::uint8_t v = std::uint8_t(value.to_int());
        return device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { static_cast<std::uint8_t*>(p)[i] = v; });
      }
      default: {
        const float v = float(value.to_double());
        return device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { store_from_float(p, t, i, v); });
      }
    }
  }

  void cast(const TensorView& in, const TensorView& out) override {
    if (in.numel() != out.numel())
      throw std::invalid_argument(
          fmt::format("cast: shapes {} and {} differ", in.shape.to_string(), out.shape.to_string()));
    if (in.dtype == out.dtype) return copy(out.data, in.data, in.bytes());
    const void* s = in.data;
    void* d = out.data;
    const DType st = in.dtype, dt = out.dtype;
    device_.launch(in.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) { store_from_float(d, dt, i, load_as_float(s, st, i)); });
  }

  void copy_strided(const StridedView& src, const StridedView& dst, bool accumulate) override {
    check_copy_strided(src, dst, accumulate);
    const int rank = dst.shape.rank();
    const Dims dims = dims_of(dst.shape), ss = strides_of(src.strides), ds = strides_of(dst.strides);
    const std::size_t esize = dtype_size(dst.dtype);
    const char* sp = static_cast<const char*>(src.data);
    char* dp = static_cast<char*>(dst.data);
    device_.launch(dst.shape.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) {
      std::int64_t rem = i, s_off = 0, d_off = 0;
      for (int ax = rank - 1; ax >= 0; --ax) {
        const std::int64_t idx = rem % dims.v[ax];
        rem /= dims.v[ax];
        s_off += idx * ss.v[ax];
        d_off += idx * ds.v[ax];
      }
      // Atomically: a destination with zero strides (a broadcast's gradient) gathers several sources.
      if (accumulate)
        atomic_add(reinterpret_cast<float*>(dp) + d_off, reinterpret_cast<const float*>(sp)[s_off]);
      else
        copy_element(dp + d_off * std::int64_t(esize), sp + s_off * std::int64_t(esize), esize);
    });
  }

  void unary(UnaryOp op, const TensorView& x, const TensorView& y, float alpha) override {
    check_float_pair(x, y, "unary");
    const float* xp = x.as<const float>();
    float* yp = y.as<float>();
    device_.launch(x.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) { yp[i] = unary_value(op, xp[i], alpha); });
  }

  void unary_backward(UnaryOp op, const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx,
                      float alpha) override {
    check_float_pair(dy, dx, "unary_backward");
    const float* xp = x.data ? x.as<const float>() : nullptr;
    const float* yp = y.data ? y.as<const float>() : nullptr;
    const float* dyp = dy.as<const float>();
    float* dxp = dx.as<float>();
    device_.launch(dx.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) {
      dxp[i] = dyp[i] * unary_derivative(op, xp ? xp[i] : 0.f, yp ? yp[i] : 0.f, alpha);
    });
  }

  void binary(BinaryOp op, const TensorView& a, const TensorView& b, const TensorView& out) override {
    if (a.dtype != DType::float32 || b.dtype != DType::float32 || out.dtype != DType::float32)
      throw std::invalid_argument(fmt::format("{} binary {}: expects float32 tensors", name_, binary_op_name(op)));
    const int rank = out.shape.rank();
    if (a.shape.rank() != rank || b.shape.rank() != rank)
      throw std::invalid_argument(fmt::format("{} binary {}: operands {} and {} must have the rank of output {}", name_,
                                              binary_op_name(op), a.shape.to_string(), b.shape.to_string(),
                                              out.shape.to_string()));
    for (int i = 0; i < rank; ++i)
      if ((a.shape[i] != out.shape[i] && a.shape[i] != 1) || (b.shape[i] != out.shape[i] && b.shape[i] != 1))
        throw std::invalid_argument(fmt::format("{} binary {}: {} and {} do not broadcast to {}", name_, binary_op_name(op),
                                                a.shape.to_string(), b.shape.to_string(), out.shape.to_string()));
    const float* ap = a.as<const float>();
    const float* bp = b.as<const float>();
    float* op_ = out.as<float>();
    const std::int64_t n = out.numel(), na = a.numel(), nb = b.numel();
    if (na == n && nb == n) {
      device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { op_[i] = binary_value(op, ap[i], bp[i]); });
      return;
    }
    if (nb == 1) {
      device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { op_[i] = binary_value(op, ap[i], bp[0]); });
      return;
    }
    if (na == 1) {
      device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { op_[i] = binary_value(op, ap[0], bp[i]); });
      return;
    }
    // Broadcast dimensions read with stride 0.
    const auto ca = contiguous_strides(a.shape), cb = contiguous_strides(b.shape);
    Dims dims = dims_of(out.shape), sa, sb;
    for (int i = 0; i < rank; ++i) {
      sa.v[i] = a.shape[i] == 1 ? 0 : ca[std::size_t(i)];
      sb.v[i] = b.shape[i] == 1 ? 0 : cb[std::size_t(i)];
    }
    device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
      std::int64_t rem = i, oa = 0, ob = 0;
      for (int ax = rank - 1; ax >= 0; --ax) {
        const std::int64_t idx = rem % dims.v[ax];
        rem /= dims.v[ax];
        oa += idx * sa.v[ax];
        ob += idx * sb.v[ax];
      }
      op_[i] = binary_value(op, ap[oa], bp[ob]);
    });
  }

  // ---- linear algebra ----
  void gemm(const GemmArgs& args) override {
    if (args.m <= 0 || args.n <= 0 || args.batch <= 0) return;
    device_.gemm(args);
  }

  // ---- reductions ----
  void reduce(ReduceOp op, const TensorView& in, const TensorView& out) override {
    if (in.dtype != DType::float32 || out.dtype != DType::float32)
      throw std::invalid_argument(fmt::format("{} reduce: expects float32 tensors", name_));
    const int rank = in.shape.rank();
    if (out.shape.rank() != rank)
      throw std::invalid_argument(fmt::format("{} reduce: output {} must keep the rank of input {}", name_,
                                              out.shape.to_string(), in.shape.to_string()));
    // Kept and reduced dimensions (size-1 ones dropped), each with its stride in the input.
    Dims kept_dims, kept_strides, red_dims, red_strides;
    int kept = 0, red = 0;
    std::int64_t count = 1;
    const auto strides = contiguous_strides(in.shape);
    for (int i = 0; i < rank; ++i) {
      const std::int64_t d = in.shape[i];
      if (out.shape[i] != d && out.shape[i] != 1)
        throw std::invalid_argument(fmt::format("{} reduce: output {} does not match input {}", name_,
                                                out.shape.to_string(), in.shape.to_string()));
      if (d == 1) continue;
      if (out.shape[i] == 1) {
        red_dims.v[red] = d;
        red_strides.v[red++] = strides[std::size_t(i)];
        count *= d;
      } else {
        kept_dims.v[kept] = d;
        kept_strides.v[kept++] = strides[std::size_t(i)];
      }
    }
    const std::int64_t n_out = out.numel();
    float* dst = out.as<float>();
    const float* src = in.as<const float>();
    const bool is_max = op == ReduceOp::max, is_min = op == ReduceOp::min;
    if (in.numel() == 0) {
      const float empty = is_max ? -std::numeric_limits<float>::infinity()
                          : is_min ? std::numeric_limits<float>::infinity()
                          : op == ReduceOp::mean ? std::numeric_limits<float>::quiet_NaN()
                                                 : 0.f;
      device_.launch(n_out, [=] STRATA_HOST_DEVICE(std::int64_t i) { dst[i] = empty; });
      return;
    }
    const float init = is_max ? -std::numeric_limits<float>::infinity() : is_min ? std::numeric_limits<float>::infinity() : 0.f;
    const double scale = op == ReduceOp::mean ? 1.0 / double(count) : 1.0;
    // acc over the reduced indices [k0, k1) of output o.
    auto partial = [=] STRATA_HOST_DEVICE(std::int64_t o, std::int64_t k0, std::int64_t k1) {
      std::int64_t rem = o, base = 0;
      for (int g = kept - 1; g >= 0; --g) {
        base += (rem % kept_dims.v[g]) * kept_strides.v[g];
        rem /= kept_dims.v[g];
      }
      float acc = init;
      for (std::int64_t k = k0; k < k1; ++k) {
        std::int64_t r = k, off = base;
        for (int g = red - 1; g >= 0; --g) {
          off += (r % red_dims.v[g]) * red_strides.v[g];
          r /= red_dims.v[g];
        }
        const float v = src[off];
        acc = is_max ? max_keeping_nan(acc, v) : is_min ? min_keeping_nan(acc, v) : acc + v;
      }
      return acc;
    };
    // Long reductions into few outputs are split into chunks summed in a second pass, so that the work
    // spreads over many threads.
    const std::int64_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
    if (chunks <= 1 || n_out >= kManyOutputs) {
      device_.launch(n_out, [=] STRATA_HOST_DEVICE(std::int64_t o) { dst[o] = float(double(partial(o, 0, count)) * scale); });
      return;
    }
    float* parts = scratch(std::size_t(n_out * chunks));
    device_.launch(n_out * chunks, [=] STRATA_HOST_DEVICE(std::int64_t i) {
      // Neighbouring threads take neighbouring outputs, which are neighbours in memory when the kept
      // dimensions are the inner ones (per-channel statistics), so their reads coalesce.
      const std::int64_t o = i % n_out, c = i / n_out;
      const std::int64_t k0 = c * kReduceChunk, k1 = k0 + kReduceChunk < count ? k0 + kReduceChunk : count;
      parts[o * chunks + c] = partial(o, k0, k1);
    });
    device_.launch(n_out, [=] STRATA_HOST_DEVICE(std::int64_t o) {
      double acc = init;
      for (std::int64_t c = 0; c < chunks; ++c) {
        const double v = parts[o * chunks + c];
        acc = is_max ? max_keeping_nan(acc, v) : is_min ? min_keeping_nan(acc, v) : acc + v;
      }
      dst[o] = float(acc * scale);
    });
  }

  void argmax(const TensorView& in, const TensorView& out, int axis) override {
    if (in.dtype != DType::float32) throw std::invalid_argument(fmt::format("{} argmax: expects a float32 input", name_));
    if (out.dtype != DType::int32 && out.dtype != DType::int64)
      throw std::invalid_argument(fmt::format("{} argmax: output must be int32 or int64", name_));
    const AxisSplit s = split_at(in.shape, axis);
    const float* x = in.as<const float>();
    void* op = out.data;
    const bool wide = out.dtype == DType::int64;
    device_.launch(s.outer * s.inner, [=] STRATA_HOST_DEVICE(std::int64_t oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const std::int64_t best = argmax_strided(x + o * s.len * s.inner + i, s.len, s.inner);
      if (wide)
        static_cast<std::int64_t*>(op)[oi] = best;
      else
        static_cast<std::int32_t*>(op)[oi] = std::int32_t(best);
    });
  }

  void softmax(const TensorView& x, const TensorView& y, int axis, bool log) override {
    const AxisSplit s = split_at(x.shape, axis);
    const float* xp = x.as<const float>();
    float* yp = y.as<float>();
    device_.launch(s.outer * s.inner, [=] STRATA_HOST_DEVICE(std::int64_t oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const float* p = xp + o * s.len * s.inner + i;
      float* q = yp + o * s.len * s.inner + i;
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t k = 0; k < s.len; ++k) m = p[k * s.inner] > m ? p[k * s.inner] : m;
      float sum = 0.f;
      if (log) {
        for (std::int64_t k = 0; k < s.len; ++k) sum += expf(p[k * s.inner] - m);
        const float lse = m + logf(sum);
        for (std::int64_t k = 0; k < s.len; ++k) q[k * s.inner] = p[k * s.inner] - lse;
      } else {
        for (std::int64_t k = 0; k < s.len; ++k) {
          const float v = expf(p[k * s.inner] - m);
          q[k * s.inner] = v;
          sum += v;
        }
        const float inv = 1.f / sum;
        for (std::int64_t k = 0; k < s.len; ++k) q[k * s.inner] *= inv;
      }
    });
  }

  void softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx, int axis, bool log) override {
    const AxisSplit s = split_at(y.shape, axis);
    const float* yp = y.as<const float>();
    const float* gp = dy.as<const float>();
    float* dp = dx.as<float>();
    device_.launch(s.outer * s.inner, [=] STRATA_HOST_DEVICE(std::int64_t oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const std::int64_t base = o * s.len * s.inner + i;
      float dot = 0.f;
      for (std::int64_t k = 0; k < s.len; ++k) {
        const std::int64_t j = base + k * s.inner;
        dot += log ? gp[j] : gp[j] * yp[j];
      }
      for (std::int64_t k = 0; k < s.len; ++k) {
        const std::int64_t j = base + k * s.inner;
        dp[j] = log ? gp[j] - expf(yp[j]) * dot : yp[j] * (gp[j] - dot);
      }
    });
  }

  // ---- indexing ----
  void gather(const TensorView& table, const TensorView& indices, const TensorView& out, int axis, int batch_dims) override {
    const GatherGeometry g = gather_geometry(name_, "gather", table.shape, indices, axis, batch_dims);
    check_indices("gather", indices, g.axis_len);
    const std::size_t esize = dtype_size(table.dtype);
    const char* tp = static_cast<const char*>(table.data);
    char* op = static_cast<char*>(out.data);
    const void* ip = indices.data;
    const DType it = indices.dtype;
    device_.launch(g.batch * g.rest * g.n_idx * g.suffix, [=] STRATA_HOST_DEVICE(std::int64_t e) {
      const std::int64_t row = e / g.suffix, j = e % g.suffix;
      const std::int64_t i = row % g.n_idx, pr = (row / g.n_idx) % g.rest, pb = row / (g.n_idx * g.rest);
      const std::int64_t k = load_index(ip, it, pb * g.n_idx + i);
      const std::int64_t src = ((pb * g.rest + pr) * g.axis_len + k) * g.suffix + j;
      copy_element(op + e * std::int64_t(esize), tp + src * std::int64_t(esize), esize);
    });
  }

  void scatter_add(const TensorView& updates, const TensorView& indices, const TensorView& out, int axis,
                   int batch_dims) override {
    if (updates.dtype != DType::float32 || out.dtype != DType::float32)
      throw std::invalid_argument(fmt::format("{} scatter_add: expects float32 updates and output", name_));
    const GatherGeometry g = gather_geometry(name_, "scatter_add", out.shape, indices, axis, batch_dims);
    check_indices("scatter_add", indices, g.axis_len);
    const float* up = updates.as<const float>();
    float* op = out.as<float>();
    const void* ip = indices.data;
    const DType it = indices.dtype;
    // Repeated indices add into the same rows: atomically.
    device_.launch(g.batch * g.rest * g.n_idx * g.suffix, [=] STRATA_HOST_DEVICE(std::int64_t e) {
      const std::int64_t row = e / g.suffix, j = e % g.suffix;
      const std::int64_t i = row % g.n_idx, pr = (row / g.n_idx) % g.rest, pb = row / (g.n_idx * g.rest);
      const std::int64_t k = load_index(ip, it, pb * g.n_idx + i);
      atomic_add(op + ((pb * g.rest + pr) * g.axis_len + k) * g.suffix + j, up[e]);
    });
  }

  // ---- convolution: im2col + GEMM over chunks of images, with the column matrix in reused scratch ----
  void conv2d(const TensorView& x, const TensorView& kernel, const TensorView& y, const Window2D& w) override {
    const ConvGeometry g = conv_geometry(name_, "conv2d", x.shape, kernel.shape, y.shape, w);
    const float* xp = x.as<const float>();
    const float* kp = kernel.as<const float>();
    float* yp = y.as<float>();
    if (is_pointwise(g, w)) {
      gemm(pointwise_conv_forward(g, xp, kp, yp));
      return;
    }
    for_each_image_chunk(g, [&](std::int64_t n0, std::int64_t nb, std::int64_t grp, float* col) {
      im2col(g, w, xp, n0, nb, grp, col);
      gemm(GemmArgs{.m = nb * g.pixels(), .n = g.og, .k = g.patch(), .a = col, .lda = g.patch(), .b = kp + grp * g.og,
                    .ldb = g.o, .c = yp + n0 * g.pixels() * g.o + grp * g.og, .ldc = g.o});
    });
  }

  void conv2d_backward_data(const TensorView& dy, const TensorView& kernel, const TensorView& dx, const Window2D& w) override {
    const ConvGeometry g = conv_geometry(name_, "conv2d_backward_data", dx.shape, kernel.shape, dy.shape, w);
    const float* dyp = dy.as<const float>();
    const float* kp = kernel.as<const float>();
    float* dxp = dx.as<float>();
    if (is_pointwise(g, w)) {
      gemm(pointwise_conv_backward_data(g, dyp, kp, dxp));
      return;
    }
    for_each_image_chunk(g, [&](std::int64_t n0, std::int64_t nb, std::int64_t grp, float* col) {
      gemm(GemmArgs{.transpose_b = true, .m = nb * g.pixels(), .n = g.patch(), .k = g.og,
                    .a = dyp + n0 * g.pixels() * g.o + grp * g.og, .lda = g.o, .b = kp + grp * g.og, .ldb = g.o,
                    .c = col, .ldc = g.patch()});
      col2im(g, w, col, n0, nb, grp, dxp);
    });
  }

  void conv2d_backward_filter(const TensorView& x, const TensorView& dy, const TensorView& dkernel,
                              const Window2D& w) override {
    const ConvGeometry g = conv_geometry(name_, "conv2d_backward_filter", x.shape, dkernel.shape, dy.shape, w);
    const float* xp = x.as<const float>();
    const float* dyp = dy.as<const float>();
    float* dkp = dkernel.as<float>();
    if (is_pointwise(g, w)) {
      gemm(pointwise_conv_backward_filter(g, xp, dyp, dkp));
      return;
    }
    for_each_image_chunk(g, [&](std::int64_t n0, std::int64_t nb, std::int64_t grp, float* col) {
      im2col(g, w, xp, n0, nb, grp, col);
      gemm(GemmArgs{.transpose_a = true, .m = g.patch(), .n = g.og, .k = nb * g.pixels(), .beta = n0 == 0 ? 0.f : 1.f,
                    .a = col, .lda = g.patch(), .b = dyp + n0 * g.pixels() * g.o + grp * g.og, .ldb = g.o,
                    .c = dkp + grp * g.og, .ldc = g.o});
    });
  }

  // ---- pooling: one thread per output (forward) or per input element (backward, no atomics) ----
  void pool2d(PoolKind kind, const TensorView& x, const TensorView& y, const Window2D& w) override {
    check_pool_shapes("pool2d", x.shape, y.shape);
    const std::int64_t h = x.shape[1], wd = x.shape[2], c = x.shape[3], oh = y.shape[1], ow = y.shape[2];
    const float* xp = x.as<const float>();
    float* yp = y.as<float>();
    const bool is_max = kind == PoolKind::max;
    device_.launch(y.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) {
      const std::int64_t ch = i % c, ox = (i / c) % ow, oy = (i / (c * ow)) % oh, img = i / (c * ow * oh);
      const std::int64_t ys = oy * w.stride_h - w.pad_top, xs = ox * w.stride_w - w.pad_left;
      const std::int64_t y0 = ys > 0 ? ys : 0, y1 = ys + w.kernel_h < h ? ys + w.kernel_h : h;
      const std::int64_t x0 = xs > 0 ? xs : 0, x1 = xs + w.kernel_w < wd ? xs + w.kernel_w : wd;
      float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
      for (std::int64_t iy = y0; iy < y1; ++iy)
        for (std::int64_t ix = x0; ix < x1; ++ix) {
          const float v = xp[((img * h + iy) * wd + ix) * c + ch];
          acc = is_max ? (v > acc ? v : acc) : acc + v;
        }
      if (!is_max) {
        const std::int64_t count = (y1 - y0) * (x1 - x0);
        acc *= 1.f / float(count > 1 ? count : 1);
      }
      yp[i] = acc;
    });
  }

  void pool2d_backward(PoolKind kind, const TensorView& x, const TensorView& y, const TensorView& dy, const TensorView& dx,
                       const Window2D& w) override {
    check_pool_shapes("pool2d_backward", x.shape, y.shape);
    const std::int64_t h = x.shape[1], wd = x.shape[2], c = x.shape[3], oh = y.shape[1], ow = y.shape[2];
    const float* xp = x.as<const float>();
    const float* yp = y.as<const float>();
    const float* dyp = dy.as<const float>();
    float* dxp = dx.as<float>();
    const bool is_max = kind == PoolKind::max;
    device_.launch(x.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) {
      const std::int64_t ch = i % c, ix = (i / c) % wd, iy = (i / (c * wd)) % h, img = i / (c * wd * h);
      // Windows whose rows [oy * stride - pad, + kernel) hold iy, and likewise for columns.
      std::int64_t oy0 = floor_div(iy + w.pad_top - w.kernel_h, w.stride_h) + 1, oy1 = floor_div(iy + w.pad_top, w.stride_h);
      std::int64_t ox0 = floor_div(ix + w.pad_left - w.kernel_w, w.stride_w) + 1, ox1 = floor_div(ix + w.pad_left, w.stride_w);
      oy0 = oy0 > 0 ? oy0 : 0;
      ox0 = ox0 > 0 ? ox0 : 0;
      oy1 = oy1 < oh - 1 ? oy1 : oh - 1;
      ox1 = ox1 < ow - 1 ? ox1 : ow - 1;
      float grad = 0.f;
      for (std::int64_t oy = oy0; oy <= oy1; ++oy)
        for (std::int64_t ox = ox0; ox <= ox1; ++ox) {
          const std::int64_t ys = oy * w.stride_h - w.pad_top, xs = ox * w.stride_w - w.pad_left;
          const std::int64_t y0 = ys > 0 ? ys : 0, y1 = ys + w.kernel_h < h ? ys + w.kernel_h : h;
          const std::int64_t x0 = xs > 0 ? xs : 0, x1 = xs + w.kernel_w < wd ? xs + w.kernel_w : wd;
          const std::int64_t o = ((img * oh + oy) * ow + ox) * c + ch;
          if (!is_max) {
            const std::int64_t count = (y1 - y0) * (x1 - x0);
            grad += dyp[o] / float(count > 1 ? count : 1);
            continue;
          }
          // The first position of the window (row-major) that holds the maximum takes the gradient.
          bool first = false, found = false;
          for (std::int64_t wy = y0; wy < y1 && !found; ++wy)
            for (std::int64_t wx = x0; wx < x1 && !found; ++wx)
              if (xp[((img * h + wy) * wd + wx) * c + ch] == yp[o]) {
                found = true;
                first = wy == iy && wx == ix;
              }
          if (first) grad += dyp[o];
        }
      dxp[i] = grad;
    });
  }

  // ---- recurrent cells: one thread per (sample, unit) ----
  void rnn_cell(RnnCellOp op, std::span<const TensorView> in, std::span<const TensorView> out) override {
    check_rnn_cell_operands(op, in.size(), out.size());
    const bool lstm = op == RnnCellOp::lstm || op == RnnCellOp::lstm_grad_z || op == RnnCellOp::lstm_grad_c;
    const std::int64_t width = in[0].shape[in[0].shape.rank() - 1];
    const std::int64_t u = width / (lstm ? 4 : 3);
    const std::int64_t rows = width > 0 ? in[0].numel() / width : 0;
    const float* z = in[0].as<const float>();
    const float* i1 = in[1].as<const float>();
    const float* i2 = in.size() > 2 ? in[2].as<const float>() : nullptr;
    const float* i3 = in.size() > 3 ? in[3].as<const float>() : nullptr;
    const float* i4 = in.size() > 4 ? in[4].as<const float>() : nullptr;
    float* o0 = out[0].as<float>();
    float* o1 = out.size() > 1 ? out[1].as<float>() : nullptr;
    device_.launch(rows * u, [=] STRATA_HOST_DEVICE(std::int64_t e) {
      const std::int64_t b = e / u, j = e % u;
      const float* zb = z + b * width + j;  // gate k of unit j at zb[k * u]
      const std::int64_t at = b * u + j;
      switch (op) {
        case RnnCellOp::lstm: {
          const float ig = sigmoidf(zb[0]), fg = sigmoidf(zb[u]), gg = tanhf(zb[2 * u]), og = sigmoidf(zb[3 * u]);
          const float c = fg * i1[at] + ig * gg;
          o1[at] = c;
          o0[at] = og * tanhf(c);
          return;
        }
        case RnnCellOp::lstm_grad_z: {
          // inputs z, c_prev, c, dh, dc
          const float ig = sigmoidf(zb[0]), fg = sigmoidf(zb[u]), gg = tanhf(zb[2 * u]), og = sigmoidf(zb[3 * u]);
          const float tc = tanhf(i2[at]), dh = i3[at];
          const float dc = i4[at] + dh * og * (1.f - tc * tc);
          float* dz = o0 + b * width + j;
          dz[0] = dc * gg * ig * (1.f - ig);
          dz[u] = dc * i1[at] * fg * (1.f - fg);
          dz[2 * u] = dc * ig * (1.f - gg * gg);
          dz[3 * u] = dh * tc * og * (1.f - og);
          return;
        }
        case RnnCellOp::lstm_grad_c: {
          // inputs z, c, dh, dc
          const float fg = sigmoidf(zb[u]), og = sigmoidf(zb[3 * u]), tc = tanhf(i1[at]);
          o0[at] = (i3[at] + i2[at] * og * (1.f - tc * tc)) * fg;
          return;
        }
        default: {
          // GRU, reset after the recurrent product; inputs x, r, h_prev (, dh).
          const float* rb = i1 + b * width + j;
          const float zg = sigmoidf(zb[0] + rb[0]), rg = sigmoidf(zb[u] + rb[u]);
          const float hh = tanhf(zb[2 * u] + rg * rb[2 * u]);
          const float h_prev = i2[at];
          if (op == RnnCellOp::gru) {
            o0[at] = zg * h_prev + (1.f - zg) * hh;
            return;
          }
          const float dh = i3[at];
          if (op == RnnCellOp::gru_grad_h) {
            o0[at] = dh * zg;
            return;
          }
          const float d_hpre = dh * (1.f - zg) * (1.f - hh * hh);
          float* d = o0 + b * width + j;
          d[0] = dh * (h_prev - hh) * zg * (1.f - zg);
          d[u] = d_hpre * rb[2 * u] * rg * (1.f - rg);
          d[2 * u] = op == RnnCellOp::gru_grad_x ? d_hpre : d_hpre * rg;
          return;
        }
      }
    });
  }

  // ---- random numbers: the CPU backend's Philox streams, one block of four per thread ----
  void random(RandomKind kind, const TensorView& out, std::uint64_t seed, std::uint64_t offset, float a, float b) override {
    if (out.dtype != DType::float32) throw std::invalid_argument(fmt::format("{} random: expects float32", name_));
    float* p = out.as<float>();
    const std::int64_t n = out.numel();
    device_.launch((n + 3) / 4, [=] STRATA_HOST_DEVICE(std::int64_t blk) {
      philox::write_block(kind, p, n, blk, seed, offset, a, b);
    });
  }

  // ---- optimizers: the CPU backend's update rules, one thread per element ----
  void optimizer_update(const OptimizerUpdate& u, const TensorView& param, const TensorView& grad,
                        std::span<const TensorView> slots) override {
    if (param.dtype != DType::float32 || grad.dtype != DType::float32)
      throw std::invalid_argument(fmt::format("{} optimizer_update: expects float32", name_));
    const std::int64_t n = param.numel();
    if (grad.numel() != n)
      throw std::invalid_argument(fmt::format("optimizer_update: parameter {} and gradient {} differ",
                                              param.shape.to_string(), grad.shape.to_string()));
    const std::size_t needed = optimizer_slots(u, slots.size());
    float* p = param.as<float>();
    const float* g = grad.as<const float>();
    float* s0 = needed > 0 ? slots[0].as<float>() : nullptr;
    float* s1 = needed > 1 ? slots[1].as<float>() : nullptr;
    float* s2 = needed > 2 ? slots[2].as<float>() : nullptr;
    float* average = u.ema ? slots[needed].as<float>() : nullptr;
    const float lr = u.learning_rate, decay = u.weight_decay * u.learning_rate, momentum = u.momentum, eps = u.epsilon,
                rho = u.rho, b1 = 1.f - u.beta_1, b2 = 1.f - u.beta_2, alpha = u.adam_alpha, m_coef = u.nadam_m_coef,
                g_coef = u.nadam_g_coef, v_coef = u.nadam_v_coef, ema = u.ema_momentum, beta_1 = u.beta_1, beta_2 = u.beta_2;
    const OptimizerKind kind = u.kind;
    if (kind == OptimizerKind::lamb || kind == OptimizerKind::adafactor) {
      whole_variable_update(u, param, grad, slots, needed);
      return;
    }
    const bool nesterov = u.nesterov;
    float* avg = u.centered ? (momentum > 0.f ? s2 : s1) : nullptr;
    const float ftrl_power = -u.lr_power, l1 = u.l1, l2_reg = u.l2 + u.ftrl_beta / (2.f * lr), shrink = 2.f * u.l2_shrinkage;
    device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
      if (decay != 0.f) p[i] -= p[i] * decay;
      const float gi = g[i];
      switch (kind) {
        case OptimizerKind::sgd:
          if (!s0) {
            p[i] -= lr * gi;
          } else if (nesterov) {
            s0[i] = momentum * s0[i] - lr * gi;
            p[i] += momentum * s0[i] - lr * gi;
          } else {
            s0[i] = momentum * s0[i] - lr * gi;
            p[i] += s0[i];
          }
          break;
        case OptimizerKind::adam: {
          s0[i] += (gi - s0[i]) * b1;
          s1[i] += (gi * gi - s1[i]) * b2;
          float v = s1[i];
          if (s2) {
            s2[i] = s2[i] > v ? s2[i] : v;
            v = s2[i];
          }
          p[i] -= alpha * s0[i] / (sqrtf(v) + eps);
          break;
        }
        case OptimizerKind::rmsprop: {
          s0[i] = rho * s0[i] + (1.f - rho) * gi * gi;
          float d = s0[i];
          if (avg) {
            avg[i] = rho * avg[i] + (1.f - rho) * gi;
            d -= avg[i] * avg[i];
          }
          if (momentum > 0.f) {
            s1[i] = momentum * s1[i] + lr * gi / sqrtf(d + eps);
            p[i] -= s1[i];
          } else {
            p[i] -= lr * gi / sqrtf(d + eps);
          }
          break;
        }
        case OptimizerKind::adagrad:
          s0[i] += gi * gi;
          p[i] -= lr * gi / sqrtf(s0[i] + eps);
          break;
        case OptimizerKind::nadam: {
          s0[i] += (gi - s0[i]) * b1;
          s1[i] += (gi * gi - s1[i]) * b2;
          const float m_hat = m_coef * s0[i] + g_coef * gi;
          p[i] -= lr * m_hat / (sqrtf(s1[i] * v_coef) + eps);
          break;
        }
        case OptimizerKind::adamax: {
          s0[i] += (gi - s0[i]) * b1;
          const float decayed = beta_2 * s1[i], magnitude = fabsf(gi);
          s1[i] = decayed > magnitude ? decayed : magnitude;
          p[i] -= alpha * s0[i] / (s1[i] + eps);
          break;
        }
        case OptimizerKind::lion: {
          const float c = s0[i] * beta_1 + gi * (1.f - beta_1);
          p[i] -= lr * float((c > 0.f) - (c < 0.f));
          s0[i] = s0[i] * beta_2 + gi * (1.f - beta_2);
          break;
        }
        case OptimizerKind::adadelta: {
          s0[i] = rho * s0[i] + (1.f - rho) * gi * gi;
          const float delta = -(sqrtf(s1[i] + eps) * gi) / sqrtf(s0[i] + eps);
          s1[i] = rho * s1[i] + (1.f - rho) * delta * delta;
          p[i] += lr * delta;
          break;
        }
        case OptimizerKind::ftrl: {
          const float accum = s0[i], new_accum = accum + gi * gi;
          const float new_scale = powf(new_accum, ftrl_power);
          s1[i] += gi + shrink * p[i] - (new_scale - powf(accum, ftrl_power)) / lr * p[i];
          const float quadratic = new_scale / lr + 2.f * l2_reg;
          const float clipped = s1[i] < -l1 ? -l1 : s1[i] > l1 ? l1 : s1[i];
          p[i] = (clipped - s1[i]) / quadratic;
          s0[i] = new_accum;
          break;
        }
        case OptimizerKind::lamb:
        case OptimizerKind::adafactor: break;  // whole_variable_update
      }
      if (average) average[i] = ema * average[i] + (1.f - ema) * p[i];
    });
  }

  // Lamb and Adafactor scale each variable's step by norms of the whole variable (see the CPU backend): the
  // step goes to scratch, its norm and the parameter's are summed in chunks, and the last pass applies it.
  void whole_variable_update(const OptimizerUpdate& u, const TensorView& param, const TensorView& grad,
                             std::span<const TensorView> slots, std::size_t needed) {
    const std::int64_t n = param.numel();
    if (n == 0) return;
    float* p = param.as<float>();
    const float* g = grad.as<const float>();
    float* s0 = slots[0].as<float>();
    float* s1 = slots[1].as<float>();
    float* average = u.ema ? slots[needed].as<float>() : nullptr;
    const bool lamb = u.kind == OptimizerKind::lamb;
    const FactoredShape f = lamb ? FactoredShape{} : adafactor_shape(param.shape, slots[0].shape, slots[1].shape);
    const std::int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
    float* step = scratch(std::size_t(n + 2 * chunks + 2 + f.batch));
    float* parts = step + n;
    float* sums = parts + 2 * chunks;
    float* r_mean = sums + 2;
    const float lr = u.learning_rate, decay = u.weight_decay * u.learning_rate, ema = u.ema_momentum;
    if (lamb) {
      const float b1 = 1.f - u.beta_1, b2 = 1.f - u.beta_2, c1 = u.correction_1, c2 = u.correction_2, eps = u.epsilon;
      device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
        if (decay != 0.f) p[i] -= p[i] * decay;
        s0[i] += (g[i] - s0[i]) * b1;
        s1[i] += (g[i] * g[i] - s1[i]) * b2;
        step[i] = (s0[i] / c1) / (sqrtf(s1[i] / c2) + eps);
      });
    } else {
      float* v = slots[2].as<float>();
      const float d = u.decay_2, eps_1 = u.epsilon_1;
      if (decay != 0.f) device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) { p[i] -= p[i] * decay; });
      if (f.factored) {
        const std::int64_t rows = f.rows, cols = f.cols;
        device_.launch(f.batch * rows, [=] STRATA_HOST_DEVICE(std::int64_t bi) {
          const float* gr = g + bi * cols;
          double mean = 0.0;
          for (std::int64_t j = 0; j < cols; ++j) mean += double(gr[j] * gr[j] + eps_1);
          s0[bi] = d * s0[bi] + (1.f - d) * float(mean / double(cols));
        });
        device_.launch(f.batch * cols, [=] STRATA_HOST_DEVICE(std::int64_t bj) {
          const std::int64_t b = bj / cols, j = bj % cols;
          const float* gb = g + b * rows * cols + j;
          double mean = 0.0;
          for (std::int64_t i = 0; i < rows; ++i) mean += double(gb[i * cols] * gb[i * cols] + eps_1);
          s1[bj] = d * s1[bj] + (1.f - d) * float(mean / double(rows));
        });
        device_.launch(f.batch, [=] STRATA_HOST_DEVICE(std::int64_t b) {
          double sum = 0.0;
          for (std::int64_t i = 0; i < rows; ++i) sum += s0[b * rows + i];
          r_mean[b] = float(sum / double(rows));
        });
        device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
          const std::int64_t b = i / (rows * cols), row = i / cols, col = b * cols + i % cols;
          v[i] = s0[row] / r_mean[b] * s1[col];
          step[i] = g[i] / sqrtf(v[i]);
        });
      } else {
        device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
          v[i] = d * v[i] + (1.f - d) * (g[i] * g[i] + eps_1);
          step[i] = g[i] / sqrtf(v[i]);
        });
      }
    }
    // sums[0] = |p|^2, sums[1] = |step|^2.
    device_.launch(2 * chunks, [=] STRATA_HOST_DEVICE(std::int64_t at) {
      const float* x = at < chunks ? p : step;
      const std::int64_t k0 = (at % chunks) * kReduceChunk, k1 = k0 + kReduceChunk < n ? k0 + kReduceChunk : n;
      double acc = 0.0;
      for (std::int64_t k = k0; k < k1; ++k) acc += double(x[k]) * double(x[k]);
      parts[at] = float(acc);
    });
    device_.launch(2, [=] STRATA_HOST_DEVICE(std::int64_t o) {
      double acc = 0.0;
      for (std::int64_t c = 0; c < chunks; ++c) acc += parts[o * chunks + c];
      sums[o] = float(acc);
    });
    const float eps_2 = u.epsilon_2, rho = u.relative_step, clip = u.clip_threshold, count = float(n);
    device_.launch(n, [=] STRATA_HOST_DEVICE(std::int64_t i) {
      float scale;
      if (lamb) {
        const float w_norm = sqrtf(sums[0]), step_norm = sqrtf(sums[1]);
        scale = lr * (w_norm > 0.f && step_norm > 0.f ? w_norm / step_norm : 1.f);
      } else {
        const float rms_p = sqrtf(sums[0] / count), rms_step = sqrtf(sums[1] / count);
        const float ratio = rms_step / clip;
        scale = (rms_p > eps_2 ? rms_p : eps_2) * rho / (ratio > 1.f ? ratio : 1.f);
      }
      p[i] -= scale * step[i];
      if (average) average[i] = ema * average[i] + (1.f - ema) * p[i];
    });
  }

 private:
  static constexpr std::size_t kGranule = 512;
  static constexpr std::int64_t kReduceChunk = 1024;
  static constexpr std::int64_t kManyOutputs = 4096;  // enough outputs to fill the device one thread each
  static constexpr std::int64_t kColumnFloats = std::int64_t(16) << 20;  // im2col scratch per chunk: 64 MiB

  void release_cached() {
    for (auto& [bytes, blocks] : free_blocks_)
      for (void* p : blocks) device_.free(p);
    free_blocks_.clear();
    cached_bytes_ = 0;
  }

  // Scratch (reduction partials, im2col columns) grows to the largest request and is then reused; work on
  // the stream is ordered, so a later kernel's use never overlaps an earlier one's.
  float* scratch(std::size_t floats) {
    if (floats > scratch_floats_) {
      if (scratch_) deallocate(scratch_);
      scratch_ = static_cast<float*>(allocate(floats * sizeof(float)));
      scratch_floats_ = floats;
    }
    return scratch_;
  }

  void check_float_pair(const TensorView& a, const TensorView& b, const char* what) const {
    if (a.dtype != DType::float32 || b.dtype != DType::float32)
      throw std::invalid_argument(fmt::format("{} {}: expects float32 tensors", name_, what));
    if (a.numel() != b.numel())
      throw std::invalid_argument(
          fmt::format("{} {}: shapes {} and {} differ", name_, what, a.shape.to_string(), b.shape.to_string()));
  }

  // Public only because nvcc allows extended lambdas in public member functions alone.
 public:
  // Indices out of range throw, as on the CPU: a kernel records the first bad one it meets, read back here.
  void check_indices(const char* what, const TensorView& indices, std::int64_t len) {
    if (!error_slot_) {
      error_slot_ = static_cast<std::int64_t*>(allocate(2 * sizeof(std::int64_t)));
      const std::int64_t clear[2] = {0, 0};
      device_.to_device(error_slot_, clear, sizeof(clear));
    }
    std::int64_t* slot = error_slot_;
    const void* ip = indices.data;
    const DType it = indices.dtype;
    device_.launch(indices.numel(), [=] STRATA_HOST_DEVICE(std::int64_t i) {
      const std::int64_t k = load_index(ip, it, i);
      if (k < 0 || k >= len) {
        slot[1] = k;
        slot[0] = 1;
      }
    });
    std::int64_t found[2];
    device_.to_host(found, slot, sizeof(found));
    if (found[0]) {
      const std::int64_t clear[2] = {0, 0};
      device_.to_device(slot, clear, sizeof(clear));
      throw std::out_of_range(fmt::format("{}: index {} is out of range [0, {})", what, found[1], len));
    }
  }

  // Calls step(n0, nb, group, col) for each chunk of images [n0, n0 + nb) and each group, with col room for
  // the chunk's im2col matrix; chunks are as many images as fit kColumnFloats.
  template <class Step>
  void for_each_image_chunk(const ConvGeometry& g, Step&& step) {
    const std::int64_t per_image = std::max<std::int64_t>(1, g.pixels() * g.patch());
    const std::int64_t chunk = std::clamp<std::int64_t>(kColumnFloats / per_image, 1, std::max<std::int64_t>(g.n, 1));
    float* col = scratch(std::size_t(chunk * per_image));
    for (std::int64_t n0 = 0; n0 < g.n; n0 += chunk)
      for (std::int64_t grp = 0; grp < g.groups; ++grp) step(n0, std::min(chunk, g.n - n0), grp, col);
  }

  // col[(img - n0) * pixels + oy * ow + ox, (ky, kx, c)] = x[img, iy, ix, group * cg + c], zero outside the image.
  void im2col(const ConvGeometry& g, const Window2D& w, const float* x, std::int64_t n0, std::int64_t nb,
              std::int64_t group, float* col) {
    const std::int64_t patch = g.patch(), pixels = g.pixels();
    device_.launch(nb * pixels * patch, [=] STRATA_HOST_DEVICE(std::int64_t e) {
      const std::int64_t row = e / patch, p = e % patch;
      const std::int64_t c = p % g.cg, kx = (p / g.cg) % g.kw, ky = p / (g.cg * g.kw);
      const std::int64_t ox = row % g.ow, oy = (row / g.ow) % g.oh, img = n0 + row / pixels;
      const std::int64_t iy = oy * w.stride_h - w.pad_top + ky * w.dilation_h;
      const std::int64_t ix = ox * w.stride_w - w.pad_left + kx * w.dilation_w;
      col[e] = (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) ? 0.f
                                                            : x[((img * g.h + iy) * g.w + ix) * g.c + group * g.cg + c];
    });
  }

  // The adjoint of im2col, written as a gather: each input element of the group's channels sums the column
  // entries that read it, so no two threads write one element.
  void col2im(const ConvGeometry& g, const Window2D& w, const float* col, std::int64_t n0, std::int64_t nb,
              std::int64_t group, float* dx) {
    const std::int64_t patch = g.patch();
    device_.launch(nb * g.h * g.w * g.cg, [=] STRATA_HOST_DEVICE(std::int64_t e) {
      const std::int64_t c = e % g.cg, ix = (e / g.cg) % g.w, iy = (e / (g.cg * g.w)) % g.h, img = e / (g.cg * g.w * g.h);
      float acc = 0.f;
      for (std::int64_t ky = 0; ky < g.kh; ++ky) {
        const std::int64_t ty = iy + w.pad_top - ky * w.dilation_h;
        if (ty < 0 || ty % w.stride_h != 0) continue;
        const std::int64_t oy = ty / w.stride_h;
        if (oy >= g.oh) continue;
        for (std::int64_t kx = 0; kx < g.kw; ++kx) {
          const std::int64_t tx = ix + w.pad_left - kx * w.dilation_w;
          if (tx < 0 || tx % w.stride_w != 0) continue;
          const std::int64_t ox = tx / w.stride_w;
          if (ox >= g.ow) continue;
          acc += col[((img * g.oh + oy) * g.ow + ox) * patch + (ky * g.kw + kx) * g.cg + c];
        }
      }
      dx[(((n0 + img) * g.h + iy) * g.w + ix) * g.c + group * g.cg + c] = acc;
    });
  }

 private:
  void check_pool_shapes(const char* what, const Shape& x, const Shape& y) const {
    if (x.rank() != 4 || y.rank() != 4 || x[0] != y[0] || x[3] != y[3])
      throw std::invalid_argument(fmt::format("{} {}: input {} and output {} must be NHWC with equal N and C", name_, what,
                                              x.to_string(), y.to_string()));
  }

  std::string name_;
  Device device_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_blocks_;
  std::unordered_map<void*, std::size_t> sizes_;
  std::size_t cached_bytes_ = 0;
  float* scratch_ = nullptr;
  std::size_t scratch_floats_ = 0;
  std::int64_t* error_slot_ = nullptr;
};

}  // namespace strata::device
