#include "backends/cpu/cpu_backend.h"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

#include "backends/kernel_geometry.h"
#include "backends/philox.h"

namespace strata {

void register_cpu_backend() {
  register_backend("cpu", [] { return std::unique_ptr<Backend>(new cpu::CpuBackend()); });
}

namespace cpu {

namespace {

int configured_threads() {
  for (const char* var : {"STRATA_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

constexpr std::size_t kAlignment = 64;

template <class F>
void visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: return f(float{});
    case DType::float16: return f(Eigen::half{});
    case DType::bfloat16: return f(Eigen::bfloat16{});
    case DType::int32: return f(std::int32_t{});
    case DType::int64: return f(std::int64_t{});
    case DType::uint8: return f(std::uint8_t{});
  }
}

void require_float32(const TensorView& v, const char* what) {
  if (v.dtype != DType::float32)
    throw std::invalid_argument(fmt::format("cpu {}: expects float32, got {}", what, dtype_name(v.dtype)));
}

}  // namespace

int num_threads() {
  static const int n = configured_threads();
  return n;
}

CpuBackend::CpuBackend() {
  // One pool for everything: Eigen's GEMM and Strata's own loops both run on OpenMP's threads, and nested
  // regions run serially, so the process never has more busy threads than cores.
  omp_set_num_threads(num_threads());
  omp_set_max_active_levels(1);
  Eigen::setNbThreads(num_threads());
}

CpuBackend::~CpuBackend() {
  if (scratch_) deallocate(scratch_);
}

void* CpuBackend::allocate(std::size_t bytes) {
  const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  // Refused here rather than handed out: an over-committed allocation would be killed later, on first touch.
  check_fits(rounded, "an allocation");
  void* p = std::aligned_alloc(kAlignment, rounded + kAlignment);
  if (!p) throw std::bad_alloc();
  // The size lives in the first cache line so that deallocate can keep the byte counts right.
  *static_cast<std::size_t*>(p) = rounded;
  record_allocation(rounded);
  return static_cast<char*>(p) + kAlignment;
}

void CpuBackend::deallocate(void* ptr) {
  if (!ptr) return;
  void* base = static_cast<char*>(ptr) - kAlignment;
  record_deallocation(*static_cast<std::size_t*>(base));
  std::free(base);
}

void CpuBackend::copy_to_device(void* dst, const void* host_src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, host_src, bytes);
}
void CpuBackend::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(host_dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src) std::memmove(dst, src, bytes);
}

float* CpuBackend::scratch(std::size_t floats) {
  if (floats > scratch_floats_) {
    if (scratch_) deallocate(scratch_);
    scratch_ = static_cast<float*>(allocate(floats * sizeof(float)));
    scratch_floats_ = floats;
  }
  return scratch_;
}

void CpuBackend::fill(const TensorView& out, Scalar value) {
  const std::int64_t n = out.numel();
  visit_dtype(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_integral_v<T>) {
      v = T(value.to_int());
    } else {
      v = T(float(value.to_double()));
    }
    T* p = out.as<T>();
    parallel_for(n, 1, [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, v); });
  });
}

void CpuBackend::cast(const TensorView& in, const TensorView& out) {
  if (in.numel() != out.numel())
    throw std::invalid_argument(
        fmt::format("cast: shapes {} and {} differ", in.shape.to_string(), out.shape.to_string()));
  const std::int64_t n = in.numel();
  visit_dtype(in.dtype, [&](auto in_tag) {
    visit_dtype(out.dtype, [&](auto out_tag) {
      using S = decltype(in_tag);
      using D = decltype(out_tag);
      const S* s = in.as<const S>();
      D* d = out.as<D>();
      parallel_for(n, 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) {
          // Through float: every pair of types converts that way (integers truncate toward zero).
          if constexpr (std::is_same_v<S, D>) {
            d[i] = s[i];
          } else {
            d[i] = D(static_cast<float>(s[i]));
          }
        }
      });
    });
  });
}

void CpuBackend::copy_strided(const StridedView& src, const StridedView& dst, bool accumulate) {
  check_copy_strided(src, dst, accumulate);
  const int rank = dst.shape.rank();
  if (rank == 0) {
    if (accumulate)
      *static_cast<float*>(dst.data) += *static_cast<const float*>(src.data);
    else
      std::memcpy(dst.data, src.data, dtype_size(dst.dtype));
    return;
  }
  const std::int64_t inner = dst.shape[rank - 1];
  const std::int64_t rows = dst.shape.numel() / std::max<std::int64_t>(inner, 1);
  if (dst.shape.numel() == 0) return;
  const std::int64_t s_inner = src.strides[std::size_t(rank - 1)], d_inner = dst.strides[std::size_t(rank - 1)];
  const std::size_t esize = dtype_size(dst.dtype);
  parallel_for(rows, inner, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      // Decompose the row number into the outer indices.
      std::int64_t rem = row, s_off = 0, d_off = 0;
      for (int ax = rank - 2; ax >= 0; --ax) {
        const std::int64_t idx = rem % dst.shape[ax];
        rem /= dst.shape[ax];
        s_off += idx * src.strides[std::size_t(ax)];
        d_off += idx * dst.strides[std::size_t(ax)];
      }
      if (accumulate) {
        const float* s = static_cast<const float*>(src.data) + s_off;
        float* d = static_cast<float*>(dst.data) + d_off;
        for (std::int64_t j = 0; j < inner; ++j) d[j * d_inner] += s[j * s_inner];
      } else if (s_inner == 1 && d_inner == 1) {
        std::memcpy(static_cast<char*>(dst.data) + d_off * std::int64_t(esize),
                    static_cast<const char*>(src.data) + s_off * std::int64_t(esize), std::size_t(inner) * esize);
      } else {
        const char* s = static_cast<const char*>(src.data) + s_off * std::int64_t(esize);
        char* d = static_cast<char*>(dst.data) + d_off * std::int64_t(esize);
        for (std::int64_t j = 0; j < inner; ++j)
          std::memcpy(d + j * d_inner * std::int64_t(esize), s + j * s_inner * std::int64_t(esize), esize);
      }
    }
  });
}

void CpuBackend::random(RandomKind kind, const TensorView& out, std::uint64_t seed, std::uint64_t offset, float a,
                        float b) {
  require_float32(out, "random");
  float* p = out.as<float>();
  const std::int64_t n = out.numel();
  // Whole Philox blocks per item so that threads never split one block.
  const std::int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 40, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t blk = begin; blk < end; ++blk) philox::write_block(kind, p, n, blk, seed, offset, a, b);
  });
}

void CpuBackend::optimizer_update(const OptimizerUpdate& u, const TensorView& param, const TensorView& grad,
                                  std::span<const TensorView> slots) {
  require_float32(param, "optimizer_update");
  require_float32(grad, "optimizer_update");
  const std::int64_t n = param.numel();
  if (grad.numel() != n)
    throw std::invalid_argument(fmt::format("optimizer_update: parameter {} and gradient {} differ",
                                            param.shape.to_string(), grad.shape.to_string()));
  const std::size_t needed = optimizer_slots(u, slots.size());
  float* __restrict p = param.as<float>();
  const float* __restrict g = grad.as<const float>();
  float* __restrict s0 = needed > 0 ? slots[0].as<float>() : nullptr;
  float* __restrict s1 = needed > 1 ? slots[1].as<float>() : nullptr;
  float* __restrict s2 = needed > 2 ? slots[2].as<float>() : nullptr;
  float* __restrict average = u.ema ? slots[needed].as<float>() : nullptr;
  const float lr = u.learning_rate, decay = u.weight_decay * u.learning_rate, ema = u.ema_momentum;
  // One simple loop per rule (the choice made once, outside), so that each vectorises: the rules capture
  // the pointers and coefficients by value, which leaves the compiler free to keep them in registers.
  auto run = [&](auto rule) {
    parallel_for(n, 8, [=](std::int64_t begin, std::int64_t end) {
      if (decay != 0.f)
        for (std::int64_t i = begin; i < end; ++i) p[i] -= p[i] * decay;
      for (std::int64_t i = begin; i < end; ++i) rule(i);
      if (average)
        for (std::int64_t i = begin; i < end; ++i) average[i] = ema * average[i] + (1.f - ema) * p[i];
    });
  };
  const float momentum = u.momentum, eps = u.epsilon, rho = u.rho;
  switch (u.kind) {
    case OptimizerKind::sgd:
      if (!s0) run([=](std::int64_t i) { p[i] -= lr * g[i]; });
      else if (u.nesterov) run([=](std::int64_t i) {
        s0[i] = momentum * s0[i] - lr * g[i];
        p[i] += momentum * s0[i] - lr * g[i];
      });
      else run([=](std::int64_t i) {
        s0[i] = momentum * s0[i] - lr * g[i];
        p[i] += s0[i];
      });
      return;
    case OptimizerKind::adam: {
      const float b1 = 1.f - u.beta_1, b2 = 1.f - u.beta_2, alpha = u.adam_alpha;
      if (s2) run([=](std::int64_t i) {
        s0[i] += (g[i] - s0[i]) * b1;
        s1[i] += (g[i] * g[i] - s1[i]) * b2;
        s2[i] = std::max(s2[i], s1[i]);
        p[i] -= alpha * s0[i] / (std::sqrt(s2[i]) + eps);
      });
      else run([=](std::int64_t i) {
        s0[i] += (g[i] - s0[i]) * b1;
        s1[i] += (g[i] * g[i] - s1[i]) * b2;
        p[i] -= alpha * s0[i] / (std::sqrt(s1[i]) + eps);
      });
      return;
    }
    case OptimizerKind::rmsprop: {
      float* __restrict avg = u.centered ? (momentum > 0.f ? s2 : s1) : nullptr;
      auto denominator = [=](std::int64_t i) {
        const float gi = g[i];
        s0[i] = rho * s0[i] + (1.f - rho) * gi * gi;
        float d = s0[i];
        if (avg) {
          avg[i] = rho * avg[i] + (1.f - rho) * gi;
          d -= avg[i] * avg[i];
        }
        return d;
      };
      if (momentum > 0.f) run([=](std::int64_t i) {
        const float increment = lr * g[i] / std::sqrt(denominator(i) + eps);
        s1[i] = momentum * s1[i] + increment;
        p[i] -= s1[i];
      });
      else run([=](std::int64_t i) { p[i] -= lr * g[i] / std::sqrt(denominator(i) + eps); });
      return;
    }
    case OptimizerKind::adagrad:
      run([=](std::int64_t i) {
        s0[i] += g[i] * g[i];
        p[i] -= lr * g[i] / std::sqrt(s0[i] + eps);
      });
      return;
    case OptimizerKind::nadam: {
      const float b1 = 1.f - u.beta_1, b2 = 1.f - u.beta_2, m_coef = u.nadam_m_coef, g_coef = u.nadam_g_coef,
                  v_coef = u.nadam_v_coef;
      run([=](std::int64_t i) {
        const float gi = g[i];
        s0[i] += (gi - s0[i]) * b1;
        s1[i] += (gi * gi - s1[i]) * b2;
        const float m_hat = m_coef * s0[i] + g_coef * gi;
        p[i] -= lr * m_hat / (std::sqrt(s1[i] * v_coef) + eps);
      });
      return;
    }
    case OptimizerKind::adamax: {
      const float b1 = 1.f - u.beta_1, beta_2 = u.beta_2, alpha = u.adam_alpha;
      run([=](std::int64_t i) {
        s0[i] += (g[i] - s0[i]) * b1;
        s1[i] = std::max(beta_2 * s1[i], std::abs(g[i]));
        p[i] -= alpha * s0[i] / (s1[i] + eps);
      });
      return;
    }
    case OptimizerKind::lion: {
      const float beta_1 = u.beta_1, beta_2 = u.beta_2;
      run([=](std::int64_t i) {
        const float c = s0[i] * beta_1 + g[i] * (1.f - beta_1);
        p[i] -= lr * float((c > 0.f) - (c < 0.f));
        s0[i] = s0[i] * beta_2 + g[i] * (1.f - beta_2);
      });
      return;
    }
    case OptimizerKind::adadelta:
      run([=](std::int64_t i) {
        const float gi = g[i];
        s0[i] = rho * s0[i] + (1.f - rho) * gi * gi;
        const float delta = -(std::sqrt(s1[i] + eps) * gi) / std::sqrt(s0[i] + eps);
        s1[i] = rho * s1[i] + (1.f - rho) * delta * delta;
        p[i] += lr * delta;
      });
      return;
    case OptimizerKind::ftrl: {
      // Keras's Ftrl: s0 the accumulator, s1 the linear term; beta enters as an extra L2 strength.
      const float power = -u.lr_power, l1 = u.l1, l2_reg = u.l2 + u.ftrl_beta / (2.f * lr), shrink = 2.f * u.l2_shrinkage;
      run([=](std::int64_t i) {
        const float accum = s0[i], new_accum = accum + g[i] * g[i];
        const float new_scale = std::pow(new_accum, power);
        s1[i] += g[i] + shrink * p[i] - (new_scale - std::pow(accum, power)) / lr * p[i];
        const float quadratic = new_scale / lr + 2.f * l2_reg;
        p[i] = (std::clamp(s1[i], -l1, l1) - s1[i]) / quadratic;
        s0[i] = new_accum;
      });
      return;
    }
    case OptimizerKind::lamb:
    case OptimizerKind::adafactor:
      whole_variable_update(u, param, grad, slots, needed);
      return;
  }
}

// Lamb and Adafactor scale each variable's step by norms of the whole variable, so they run in passes:
// the decay, the moments, the norms (summed in double, in index order), then the step.
void CpuBackend::whole_variable_update(const OptimizerUpdate& u, const TensorView& param, const TensorView& grad,
                                       std::span<const TensorView> slots, std::size_t needed) {
  const std::int64_t n = param.numel();
  float* __restrict p = param.as<float>();
  const float* __restrict g = grad.as<const float>();
  float* __restrict s0 = slots[0].as<float>();
  float* __restrict s1 = slots[1].as<float>();
  float* __restrict average = u.ema ? slots[needed].as<float>() : nullptr;
  const float lr = u.learning_rate, decay = u.weight_decay * u.learning_rate, ema = u.ema_momentum;
  auto sum_of_squares = [&](auto value) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double x = value(i);
      sum += x * x;
    }
    return sum;
  };
  const FactoredShape f = u.kind == OptimizerKind::adafactor ? adafactor_shape(param.shape, slots[0].shape, slots[1].shape) : FactoredShape{};
  if (decay != 0.f)
    parallel_for(n, 2, [=](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) p[i] -= p[i] * decay;
    });
  if (u.kind == OptimizerKind::lamb) {
    const float b1 = 1.f - u.beta_1, b2 = 1.f - u.beta_2, c1 = u.correction_1, c2 = u.correction_2, eps = u.epsilon;
    parallel_for(n, 4, [=](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        s0[i] += (g[i] - s0[i]) * b1;
        s1[i] += (g[i] * g[i] - s1[i]) * b2;
      }
    });
    auto step = [=](std::int64_t i) { return (s0[i] / c1) / (std::sqrt(s1[i] / c2) + eps); };
    const double w_norm = std::sqrt(sum_of_squares([=](std::int64_t i) { return p[i]; }));
    const double step_norm = std::sqrt(sum_of_squares(step));
    const float scale = lr * float(w_norm > 0.0 && step_norm > 0.0 ? w_norm / step_norm : 1.0);
    parallel_for(n, 6, [=](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) p[i] -= scale * step(i);
    });
  } else {
    float* __restrict v = slots[2].as<float>();
    const float d = u.decay_2, eps_1 = u.epsilon_1;
    const double rms_p = n > 0 ? std::sqrt(sum_of_squares([=](std::int64_t i) { return p[i]; }) / double(n)) : 0.0;
    const float alpha = float(std::max(double(u.epsilon_2), rms_p)) * u.relative_step;
    if (f.factored) {
      const std::int64_t rows = f.rows, cols = f.cols;
      for (std::int64_t b = 0; b < f.batch; ++b) {
        const float* gb = g + b * rows * cols;
        float* rb = s0 + b * rows;
        float* cb = s1 + b * cols;
        double r_sum = 0.0;
        for (std::int64_t i = 0; i < rows; ++i) {
          double mean = 0.0;
          for (std::int64_t j = 0; j < cols; ++j) mean += double(gb[i * cols + j] * gb[i * cols + j] + eps_1);
          rb[i] = d * rb[i] + (1.f - d) * float(mean / double(cols));
          r_sum += rb[i];
        }
        for (std::int64_t j = 0; j < cols; ++j) {
          double mean = 0.0;
          for (std::int64_t i = 0; i < rows; ++i) mean += double(gb[i * cols + j] * gb[i * cols + j] + eps_1);
          cb[j] = d * cb[j] + (1.f - d) * float(mean / double(rows));
        }
        const float r_mean = float(r_sum / double(rows));
        float* vb = v + b * rows * cols;
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) vb[i * cols + j] = rb[i] / r_mean * cb[j];
      }
    } else {
      for (std::int64_t i = 0; i < n; ++i) v[i] = d * v[i] + (1.f - d) * (g[i] * g[i] + eps_1);
    }
    auto step = [=](std::int64_t i) { return g[i] / std::sqrt(v[i]); };
    const double rms_step = n > 0 ? std::sqrt(sum_of_squares(step) / double(n)) : 0.0;
    const float scale = alpha / float(std::max(1.0, rms_step / double(u.clip_threshold)));
    parallel_for(n, 6, [=](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) p[i] -= scale * step(i);
    });
  }
  if (average)
    parallel_for(n, 3, [=](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) average[i] = ema * average[i] + (1.f - ema) * p[i];
    });
}

}  // namespace cpu
}  // namespace strata
