// Convolution (im2col + GEMM) and pooling primitives of the CPU backend, NHWC with HWIO kernels.
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/kernel_geometry.h"

namespace strata::cpu {

namespace {

// Chunks of im2col work are small enough that the column matrix stays in a core's L2 cache between im2col
// and the GEMM that reads it: about 64K floats.
constexpr std::int64_t kChunkFloats = std::int64_t(64) << 10;

std::int64_t images_per_chunk(const ConvGeometry& g) {
  const std::int64_t per_image = std::max<std::int64_t>(1, g.pixels() * g.patch());
  return std::clamp<std::int64_t>(kChunkFloats / per_image, 1, g.n);
}

std::int64_t rows_per_chunk(const ConvGeometry& g) {
  const std::int64_t per_row = std::max<std::int64_t>(1, g.ow * g.patch());
  return std::clamp<std::int64_t>(kChunkFloats / per_row, 1, g.n * g.oh);
}

// col[(r - r0) * ow + ox, (kh, kw, c)] = x[img, iy, ix, group * cg + c] for the output rows r = img * oh + oy
// in [r0, r1), zero outside the image. Output rows of consecutive images are contiguous, so a range may
// span images.
void im2col(const ConvGeometry& g, const Window2D& w, const float* x, std::int64_t r0, std::int64_t r1, std::int64_t group,
            float* col) {
  const std::int64_t patch = g.patch();
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t img = r / g.oh, oy = r % g.oh;
    const float* xi = x + img * g.h * g.w * g.c + group * g.cg;
    for (std::int64_t ox = 0; ox < g.ow; ++ox) {
      float* dst = col + ((r - r0) * g.ow + ox) * patch;
      for (std::int64_t ky = 0; ky < g.kh; ++ky) {
        const std::int64_t iy = oy * w.stride_h - w.pad_top + ky * w.dilation_h;
        for (std::int64_t kx = 0; kx < g.kw; ++kx, dst += g.cg) {
          const std::int64_t ix = ox * w.stride_w - w.pad_left + kx * w.dilation_w;
          // Runs of a few floats (first layers) are copied inline: a library call per run costs more.
          if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
            if (g.cg <= 8) for (std::int64_t c = 0; c < g.cg; ++c) dst[c] = 0.f;
            else std::memset(dst, 0, std::size_t(g.cg) * sizeof(float));
          } else {
            const float* src = xi + (iy * g.w + ix) * g.c;
            if (g.cg <= 8) for (std::int64_t c = 0; c < g.cg; ++c) dst[c] = src[c];
            else std::memcpy(dst, src, std::size_t(g.cg) * sizeof(float));
          }
        }
      }
    }
  }
}

// The adjoint of im2col for whole images [n0, n0 + nb): dx[...] += col[...]. Windows of neighbouring output
// rows overlap in dx, so the callers split work by image, never by row.
void col2im(const ConvGeometry& g, const Window2D& w, const float* col, std::int64_t n0, std::int64_t nb,
            std::int64_t group, float* dx) {
  const std::int64_t patch = g.patch();
  for (std::int64_t img = 0; img < nb; ++img) {
    float* di = dx + (n0 + img) * g.h * g.w * g.c + group * g.cg;
    for (std::int64_t oy = 0; oy < g.oh; ++oy)
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const float* src = col + ((img * g.oh + oy) * g.ow + ox) * patch;
        for (std::int64_t ky = 0; ky < g.kh; ++ky) {
          const std::int64_t iy = oy * w.stride_h - w.pad_top + ky * w.dilation_h;
          for (std::int64_t kx = 0; kx < g.kw; ++kx, src += g.cg) {
            const std::int64_t ix = ox * w.stride_w - w.pad_left + kx * w.dilation_w;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            float* d = di + (iy * g.w + ix) * g.c;
            for (std::int64_t c = 0; c < g.cg; ++c) d[c] += src[c];
          }
        }
      }
  }
}

}  // namespace

// The three convolution kernels give each thread one contiguous range of work (output rows for the forward
// pass and the filter gradient, whole images for the data gradient); each thread runs im2col and a
// single-threaded GEMM on chunks of its range with its own slice of the scratch, so the column matrix is
// produced and consumed by the same core and no barrier separates the two.

void CpuBackend::conv2d(const TensorView& x, const TensorView& kernel, const TensorView& y, const Window2D& w) {
  const ConvGeometry g = conv_geometry("cpu", "conv2d", x.shape, kernel.shape, y.shape, w);
  const float* xp = x.as<const float>();
  const float* kp = kernel.as<const float>();
  float* yp = y.as<float>();
  if (is_pointwise(g, w)) {
    gemm(pointwise_conv_forward(g, xp, kp, yp));
    return;
  }
  // Threads split output rows (not images), so that one image is shared too.
  const std::int64_t chunk = rows_per_chunk(g), col_floats = chunk * g.ow * g.patch();
  float* scratch_base = scratch(std::size_t(col_floats * num_threads()));
  parallel_for(g.n * g.oh, g.ow * g.patch() * g.og, [&](std::int64_t begin, std::int64_t end) {
    float* col = scratch_base + omp_get_thread_num() * col_floats;
    for (std::int64_t r0 = begin; r0 < end; r0 += chunk) {
      const std::int64_t r1 = std::min(r0 + chunk, end);
      for (std::int64_t grp = 0; grp < g.groups; ++grp) {
        im2col(g, w, xp, r0, r1, grp, col);
        gemm(GemmArgs{.m = (r1 - r0) * g.ow, .n = g.og, .k = g.patch(), .a = col, .lda = g.patch(),
                      .b = kp + grp * g.og, .ldb = g.o, .c = yp + r0 * g.ow * g.o + grp * g.og, .ldc = g.o});
      }
    }
  });
}

void CpuBackend::conv2d_backward_data(const TensorView& dy, const TensorView& kernel, const TensorView& dx,
                                      const Window2D& w) {
  const ConvGeometry g = conv_geometry("cpu", "conv2d_backward_data", dx.shape, kernel.shape, dy.shape, w);
  const float* dyp = dy.as<const float>();
  const float* kp = kernel.as<const float>();
  float* dxp = dx.as<float>();
  if (is_pointwise(g, w)) {
    gemm(pointwise_conv_backward_data(g, dyp, kp, dxp));
    return;
  }
  const std::int64_t chunk = images_per_chunk(g), col_floats = chunk * g.pixels() * g.patch();
  float* scratch_base = scratch(std::size_t(col_floats * num_threads()));
  parallel_for(g.n, g.pixels() * g.patch() * g.og, [&](std::int64_t begin, std::int64_t end) {
    float* col = scratch_base + omp_get_thread_num() * col_floats;
    std::memset(dxp + begin * g.h * g.w * g.c, 0, std::size_t((end - begin) * g.h * g.w * g.c) * sizeof(float));
    for (std::int64_t n0 = begin; n0 < end; n0 += chunk) {
      const std::int64_t nb = std::min(chunk, end - n0);
      for (std::int64_t grp = 0; grp < g.groups; ++grp) {
        gemm(GemmArgs{.transpose_b = true, .m = nb * g.pixels(), .n = g.patch(), .k = g.og,
                      .a = dyp + n0 * g.pixels() * g.o + grp * g.og, .lda = g.o, .b = kp + grp * g.og, .ldb = g.o,
                      .c = col, .ldc = g.patch()});
        col2im(g, w, col, n0, nb, grp, dxp);
      }
    }
  });
}

void CpuBackend::conv2d_backward_filter(const TensorView& x, const TensorView& dy, const TensorView& dkernel,
                                        const Window2D& w) {
  const ConvGeometry g = conv_geometry("cpu", "conv2d_backward_filter", x.shape, dkernel.shape, dy.shape, w);
  const float* xp = x.as<const float>();
  const float* dyp = dy.as<const float>();
  float* dkp = dkernel.as<float>();
  if (is_pointwise(g, w)) {
    gemm(pointwise_conv_backward_filter(g, xp, dyp, dkp));
    return;
  }
  // Each thread sums its images' contributions into its own copy of the kernel gradient (thread 0 into the
  // output itself); the copies are added at the end.
  const int threads = num_threads();
  const std::int64_t chunk = rows_per_chunk(g), col_floats = chunk * g.ow * g.patch(), kernel_floats = dkernel.numel();
  float* scratch_base = scratch(std::size_t((col_floats + kernel_floats + 1) * threads));
  float* partials = scratch_base + col_floats * threads;
  float* wrote = partials + kernel_floats * threads;  // wrote[t] = 1 once thread t has a partial sum
  std::fill(wrote, wrote + threads, 0.f);
  parallel_for(g.n * g.oh, g.ow * g.patch() * g.og, [&](std::int64_t begin, std::int64_t end) {
    const int t = omp_get_thread_num();
    wrote[t] = 1.f;
    float* col = scratch_base + t * col_floats;
    float* dk = t == 0 ? dkp : partials + t * kernel_floats;
    for (std::int64_t r0 = begin; r0 < end; r0 += chunk) {
      const std::int64_t r1 = std::min(r0 + chunk, end);
      for (std::int64_t grp = 0; grp < g.groups; ++grp) {
        im2col(g, w, xp, r0, r1, grp, col);
        gemm(GemmArgs{.transpose_a = true, .m = g.patch(), .n = g.og, .k = (r1 - r0) * g.ow,
                      .beta = r0 == begin ? 0.f : 1.f, .a = col, .lda = g.patch(),
                      .b = dyp + r0 * g.ow * g.o + grp * g.og, .ldb = g.o, .c = dk + grp * g.og, .ldc = g.o});
      }
    }
  });
  for (int t = 1; t < threads; ++t) {
    if (wrote[t] == 0.f) continue;
    const float* part = partials + t * kernel_floats;
    for (std::int64_t i = 0; i < kernel_floats; ++i) dkp[i] += part[i];
  }
}

namespace {

struct PoolGeometry {
  std::int64_t n, h, w, c, oh, ow;
};

PoolGeometry pool_geometry(const char* what, const Shape& x, const Shape& y) {
  if (x.rank() != 4 || y.rank() != 4 || x[0] != y[0] || x[3] != y[3])
    throw std::invalid_argument(
        fmt::format("cpu {}: input {} and output {} must be NHWC with equal N and C", what, x.to_string(), y.to_string()));
  return PoolGeometry{x[0], x[1], x[2], x[3], y[1], y[2]};
}

// The valid part of one pooling window, in input rows and columns [y0, y1) x [x0, x1).
struct WindowBounds {
  std::int64_t y0, y1, x0, x1;
};

WindowBounds window_at(const PoolGeometry& g, const Window2D& w, std::int64_t oy, std::int64_t ox) {
  const std::int64_t ys = oy * w.stride_h - w.pad_top, xs = ox * w.stride_w - w.pad_left;
  return WindowBounds{std::max<std::int64_t>(ys, 0), std::min<std::int64_t>(ys + w.kernel_h, g.h),
                      std::max<std::int64_t>(xs, 0), std::min<std::int64_t>(xs + w.kernel_w, g.w)};
}

}  // namespace

void CpuBackend::pool2d(PoolKind kind, const TensorView& x, const TensorView& y, const Window2D& w) {
  const PoolGeometry g = pool_geometry("pool2d", x.shape, y.shape);
  const float* xp = x.as<const float>();
  float* yp = y.as<float>();
  parallel_for(g.n * g.oh, g.ow * g.c * w.kernel_h * w.kernel_w, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const std::int64_t img = r / g.oh, oy = r % g.oh;
      for (std::int64_t ox = 0; ox < g.ow; ++ox) {
        const WindowBounds b = window_at(g, w, oy, ox);
        float* out = yp + ((img * g.oh + oy) * g.ow + ox) * g.c;
        const float init = kind == PoolKind::max ? -std::numeric_limits<float>::infinity() : 0.f;
        for (std::int64_t c = 0; c < g.c; ++c) out[c] = init;
        for (std::int64_t iy = b.y0; iy < b.y1; ++iy)
          for (std::int64_t ix = b.x0; ix < b.x1; ++ix) {
            const float* in = xp + ((img * g.h + iy) * g.w + ix) * g.c;
            if (kind == PoolKind::max) {
              for (std::int64_t c = 0; c < g.c; ++c) out[c] = std::max(out[c], in[c]);
            } else {
              for (std::int64_t c = 0; c < g.c; ++c) out[c] += in[c];
            }
          }
        if (kind == PoolKind::average) {
          const std::int64_t count = std::max<std::int64_t>(1, (b.y1 - b.y0) * (b.x1 - b.x0));
          const float inv = 1.f / float(count);
          for (std::int64_t c = 0; c < g.c; ++c) out[c] *= inv;
        }
      }
    }
  });
}

void CpuBackend::pool2d_backward(PoolKind kind, const TensorView& x, const TensorView& y, const TensorView& dy,
                                 const TensorView& dx, const Window2D& w) {
  const PoolGeometry g = pool_geometry("pool2d_backward", x.shape, y.shape);
  const float* xp = x.as<const float>();
  const float* yp = y.as<const float>();
  const float* dyp = dy.as<const float>();
  float* dxp = dx.as<float>();
  fill(dx, 0.f);
  // Threads take whole images: windows of one image only touch that image.
  parallel_for(g.n, g.oh * g.ow * g.c * w.kernel_h * w.kernel_w, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t img = begin; img < end; ++img)
      for (std::int64_t oy = 0; oy < g.oh; ++oy)
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const WindowBounds b = window_at(g, w, oy, ox);
          const std::int64_t o = ((img * g.oh + oy) * g.ow + ox) * g.c;
          if (kind == PoolKind::average) {
            const float inv = 1.f / float(std::max<std::int64_t>(1, (b.y1 - b.y0) * (b.x1 - b.x0)));
            for (std::int64_t iy = b.y0; iy < b.y1; ++iy)
              for (std::int64_t ix = b.x0; ix < b.x1; ++ix) {
                float* d = dxp + ((img * g.h + iy) * g.w + ix) * g.c;
                for (std::int64_t c = 0; c < g.c; ++c) d[c] += dyp[o + c] * inv;
              }
            continue;
          }
          // The first position (row-major in the window) holding the maximum gets the gradient: positions are
          // visited in order and each channel is routed once, the channel loop vectorised over blocks.
          constexpr std::int64_t kBlock = 256;
          for (std::int64_t c0 = 0; c0 < g.c; c0 += kBlock) {
            const std::int64_t nc = std::min(kBlock, g.c - c0);
            std::array<std::uint8_t, kBlock> routed{};
            const float* yo = yp + o + c0;
            const float* dyo = dyp + o + c0;
            for (std::int64_t iy = b.y0; iy < b.y1; ++iy)
              for (std::int64_t ix = b.x0; ix < b.x1; ++ix) {
                const std::int64_t i = ((img * g.h + iy) * g.w + ix) * g.c + c0;
                const float* xi = xp + i;
                float* di = dxp + i;
                for (std::int64_t c = 0; c < nc; ++c) {
                  const bool take = xi[c] == yo[c] && !routed[std::size_t(c)];
                  di[c] += take ? dyo[c] : 0.f;
                  routed[std::size_t(c)] |= std::uint8_t(take);
                }
              }
          }
        }
  });
}

}  // namespace strata::cpu
