// Reductions, softmax and indexing primitives of the CPU backend.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/kernel_geometry.h"
#include "backends/reduce_rules.h"

namespace strata::cpu {

namespace {

template <class Idx>
std::int64_t load_index(const void* p, std::int64_t i) {
  return std::int64_t(static_cast<const Idx*>(p)[i]);
}

std::int64_t index_at(const TensorView& idx, std::int64_t i) {
  return idx.dtype == DType::int64 ? load_index<std::int64_t>(idx.data, i) : load_index<std::int32_t>(idx.data, i);
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const TensorView& in, const TensorView& out) {
  if (in.dtype != DType::float32 || out.dtype != DType::float32)
    throw std::invalid_argument("cpu reduce: expects float32 tensors");
  const int rank = in.shape.rank();
  if (out.shape.rank() != rank)
    throw std::invalid_argument(fmt::format("cpu reduce: output {} must keep the rank of input {}",
                                            out.shape.to_string(), in.shape.to_string()));
  // Merge neighbouring dimensions that are all kept or all reduced; drop size-1 dimensions.
  std::int64_t dims[kMaxRank];
  bool reduced[kMaxRank];
  int r = 0;
  std::int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const std::int64_t d = in.shape[i];
    if (out.shape[i] != d && out.shape[i] != 1)
      throw std::invalid_argument(fmt::format("cpu reduce: output {} does not match input {}", out.shape.to_string(),
                                              in.shape.to_string()));
    const bool red = out.shape[i] == 1 && d != 1;
    if (red) count *= d;
    if (d == 1) continue;
    if (r > 0 && reduced[r - 1] == red) {
      dims[r - 1] *= d;
    } else {
      dims[r] = d;
      reduced[r] = red;
      ++r;
    }
  }
  const float* src = in.as<const float>();
  float* dst = out.as<float>();
  const std::int64_t n_out = out.numel();
  if (in.numel() == 0) {
    const float empty = op == ReduceOp::max ? -std::numeric_limits<float>::infinity()
                        : op == ReduceOp::min ? std::numeric_limits<float>::infinity()
                        : op == ReduceOp::mean ? std::numeric_limits<float>::quiet_NaN()
                                               : 0.f;
    for (std::int64_t i = 0; i < n_out; ++i) dst[i] = empty;
    return;
  }
  const bool is_max = op == ReduceOp::max, is_min = op == ReduceOp::min;
  const float scale = op == ReduceOp::mean ? float(1.0 / double(count)) : 1.f;

  if (r == 0 || !reduced[r - 1]) {
    // The innermost group is kept: accumulate whole contiguous rows of `inner` floats into the output.
    const std::int64_t inner = r == 0 ? 1 : dims[r - 1];
    const std::int64_t in_rows = in.numel() / inner;
    const std::int64_t out_rows = n_out / inner;
    // Map each input row to its output row: walk the outer groups.
    auto out_row_of = [&](std::int64_t row) {
      std::int64_t rem = row, orow = 0, ostride = 1;
      for (int g = r - 2; g >= 0; --g) {
        const std::int64_t idx = rem % dims[g];
        rem /= dims[g];
        if (!reduced[g]) {
          orow += idx * ostride;
          ostride *= dims[g];
        }
      }
      return orow;
    };
    // Threads split the inner columns so that no two write the same output.
    const std::int64_t chunks = std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads(), inner / 64));
    parallel_for(chunks, in.numel() / chunks, [&](std::int64_t cb, std::int64_t ce) {
      const std::int64_t j0 = inner * cb / chunks, j1 = inner * ce / chunks;
      for (std::int64_t orow = 0; orow < out_rows; ++orow) {
        float* o = dst + orow * inner;
        for (std::int64_t j = j0; j < j1; ++j)
          o[j] = is_max ? -std::numeric_limits<float>::infinity() : is_min ? std::numeric_limits<float>::infinity() : 0.f;
      }
      for (std::int64_t row = 0; row < in_rows; ++row) {
        const float* s = src + row * inner;
        float* o = dst + out_row_of(row) * inner;
        if (is_max) {
          for (std::int64_t j = j0; j < j1; ++j) o[j] = max_keeping_nan(o[j], s[j]);
        } else if (is_min) {
          for (std::int64_t j = j0; j < j1; ++j) o[j] = min_keeping_nan(o[j], s[j]);
        } else {
          for (std::int64_t j = j0; j < j1; ++j) o[j] += s[j];
        }
      }
      if (scale != 1.f)
        for (std::int64_t orow = 0; orow < out_rows; ++orow)
          for (std::int64_t j = j0; j < j1; ++j) dst[orow * inner + j] *= scale;
    });
    return;
  }

  // The innermost group is reduced: each output element reduces a set of contiguous runs, in double.
  const std::int64_t run = dims[r - 1];
  const std::int64_t runs_per_out = count / run;
  parallel_for(n_out, count, [&](std::int64_t ob, std::int64_t oe) {
    for (std::int64_t o = ob; o < oe; ++o) {
      double acc = is_max ? -std::numeric_limits<double>::infinity()
                   : is_min ? std::numeric_limits<double>::infinity()
                            : 0.0;
      for (std::int64_t k = 0; k < runs_per_out; ++k) {
        // Interleave the output index (kept groups) and k (reduced outer groups) into an input offset.
        std::int64_t rem_o = o, rem_k = k, offset = 0, stride = run;
        for (int g = r - 2; g >= 0; --g) {
          std::int64_t idx;
          if (reduced[g]) {
            idx = rem_k % dims[g];
            rem_k /= dims[g];
          } else {
            idx = rem_o % dims[g];
            rem_o /= dims[g];
          }
          offset += idx * stride;
          stride *= dims[g];
        }
        const float* s = src + offset;
        if (is_max) {
          for (std::int64_t j = 0; j < run; ++j) acc = max_keeping_nan(acc, double(s[j]));
        } else if (is_min) {
          for (std::int64_t j = 0; j < run; ++j) acc = min_keeping_nan(acc, double(s[j]));
        } else {
          float part = 0.f;
          for (std::int64_t j = 0; j < run; ++j) part += s[j];
          acc += part;
        }
      }
      dst[o] = float(acc * scale);
    }
  });
}

void CpuBackend::argmax(const TensorView& in, const TensorView& out, int axis) {
  if (in.dtype != DType::float32) throw std::invalid_argument("cpu argmax: expects a float32 input");
  if (out.dtype != DType::int32 && out.dtype != DType::int64)
    throw std::invalid_argument("cpu argmax: output must be int32 or int64");
  const AxisSplit s = split_at(in.shape, axis);
  const float* x = in.as<const float>();
  parallel_for(s.outer * s.inner, s.len, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t oi = b; oi < e; ++oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const std::int64_t best = argmax_strided(x + o * s.len * s.inner + i, s.len, s.inner);
      if (out.dtype == DType::int64)
        out.as<std::int64_t>()[oi] = best;
      else
        out.as<std::int32_t>()[oi] = std::int32_t(best);
    }
  });
}

void CpuBackend::softmax(const TensorView& x, const TensorView& y, int axis, bool log) {
  const AxisSplit s = split_at(x.shape, axis);
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  parallel_for(s.outer * s.inner, s.len * 4, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t oi = b; oi < e; ++oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const float* p = xp + o * s.len * s.inner + i;
      float* q = yp + o * s.len * s.inner + i;
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t k = 0; k < s.len; ++k) m = std::max(m, p[k * s.inner]);
      float sum = 0.f;
      if (log) {
        for (std::int64_t k = 0; k < s.len; ++k) sum += std::exp(p[k * s.inner] - m);
        const float lse = m + std::log(sum);
        for (std::int64_t k = 0; k < s.len; ++k) q[k * s.inner] = p[k * s.inner] - lse;
      } else {
        for (std::int64_t k = 0; k < s.len; ++k) {
          const float v = std::exp(p[k * s.inner] - m);
          q[k * s.inner] = v;
          sum += v;
        }
        const float inv = 1.f / sum;
        for (std::int64_t k = 0; k < s.len; ++k) q[k * s.inner] *= inv;
      }
    }
  });
}

void CpuBackend::softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx, int axis,
                                  bool log) {
  const AxisSplit s = split_at(y.shape, axis);
  const float* yp = y.as<const float>();
  const float* gp = dy.as<const float>();
  float* dp = dx.as<float>();
  parallel_for(s.outer * s.inner, s.len * 4, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t oi = b; oi < e; ++oi) {
      const std::int64_t o = oi / s.inner, i = oi % s.inner;
      const std::int64_t base = o * s.len * s.inner + i;
      float dot = 0.f;
      if (log) {
        for (std::int64_t k = 0; k < s.len; ++k) dot += gp[base + k * s.inner];
        for (std::int64_t k = 0; k < s.len; ++k) {
          const std::int64_t j = base + k * s.inner;
          dp[j] = gp[j] - std::exp(yp[j]) * dot;
        }
      } else {
        for (std::int64_t k = 0; k < s.len; ++k) dot += gp[base + k * s.inner] * yp[base + k * s.inner];
        for (std::int64_t k = 0; k < s.len; ++k) {
          const std::int64_t j = base + k * s.inner;
          dp[j] = yp[j] * (gp[j] - dot);
        }
      }
    }
  });
}

namespace {

[[noreturn]] void index_out_of_range(const char* what, std::int64_t index, std::int64_t len) {
  throw std::out_of_range(fmt::format("{}: index {} is out of range [0, {})", what, index, len));
}

}  // namespace

void CpuBackend::gather(const TensorView& table, const TensorView& indices, const TensorView& out, int axis,
                        int batch_dims) {
  const GatherGeometry g = gather_geometry("cpu", "gather", table.shape, indices, axis, batch_dims);
  const std::size_t esize = dtype_size(table.dtype);
  const char* tp = static_cast<const char*>(table.data);
  char* op = static_cast<char*>(out.data);
  const std::int64_t rows = g.batch * g.rest * g.n_idx;
  // Validate first so that no thread throws.
  for (std::int64_t i = 0, n = indices.numel(); i < n; ++i) {
    const std::int64_t k = index_at(indices, i);
    if (k < 0 || k >= g.axis_len) index_out_of_range("gather", k, g.axis_len);
  }
  parallel_for(rows, g.suffix, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t row = b; row < e; ++row) {
      const std::int64_t i = row % g.n_idx, pr = (row / g.n_idx) % g.rest, pb = row / (g.n_idx * g.rest);
      const std::int64_t k = index_at(indices, pb * g.n_idx + i);
      const std::int64_t src_row = ((pb * g.rest + pr) * g.axis_len + k);
      std::memcpy(op + row * g.suffix * std::int64_t(esize), tp + src_row * g.suffix * std::int64_t(esize),
                  std::size_t(g.suffix) * esize);
    }
  });
}

void CpuBackend::scatter_add(const TensorView& updates, const TensorView& indices, const TensorView& out, int axis,
                             int batch_dims) {
  if (updates.dtype != DType::float32 || out.dtype != DType::float32)
    throw std::invalid_argument("cpu scatter_add: expects float32 updates and output");
  const GatherGeometry g = gather_geometry("cpu", "scatter_add", out.shape, indices, axis, batch_dims);
  for (std::int64_t i = 0, n = indices.numel(); i < n; ++i) {
    const std::int64_t k = index_at(indices, i);
    if (k < 0 || k >= g.axis_len) index_out_of_range("scatter_add", k, g.axis_len);
  }
  const float* up = updates.as<const float>();
  float* op = out.as<float>();
  const std::int64_t rows = g.batch * g.rest * g.n_idx;
  // Repeated indices make rows collide, so threads split the suffix columns instead of the rows.
  const std::int64_t chunks = std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads(), g.suffix / 64));
  parallel_for(chunks, rows * g.suffix / chunks, [&](std::int64_t cb, std::int64_t ce) {
    const std::int64_t j0 = g.suffix * cb / chunks, j1 = g.suffix * ce / chunks;
    for (std::int64_t row = 0; row < rows; ++row) {
      const std::int64_t i = row % g.n_idx, pr = (row / g.n_idx) % g.rest, pb = row / (g.n_idx * g.rest);
      const std::int64_t k = index_at(indices, pb * g.n_idx + i);
      float* dst = op + ((pb * g.rest + pr) * g.axis_len + k) * g.suffix;
      const float* src = up + row * g.suffix;
      for (std::int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  });
}

}  // namespace strata::cpu
