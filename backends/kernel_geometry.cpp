#include "backends/kernel_geometry.h"

#include <fmt/format.h>

#include <stdexcept>

namespace strata {

AxisSplit split_at(const Shape& s, int axis) {
  AxisSplit r;
  for (int i = 0; i < axis; ++i) r.outer *= s[i];
  r.len = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) r.inner *= s[i];
  return r;
}

GatherGeometry gather_geometry(std::string_view backend, const char* what, const Shape& table, const TensorView& indices,
                               int axis, int batch_dims) {
  if (indices.dtype != DType::int32 && indices.dtype != DType::int64)
    throw std::invalid_argument(fmt::format("{} {}: indices must be int32 or int64, got {}", backend, what,
                                            dtype_name(indices.dtype)));
  if (batch_dims > axis || batch_dims > indices.shape.rank())
    throw std::invalid_argument(fmt::format("{} {}: batch_dims {} exceeds axis {}", backend, what, batch_dims, axis));
  GatherGeometry g;
  for (int i = 0; i < batch_dims; ++i) {
    if (table[i] != indices.shape[i])
      throw std::invalid_argument(fmt::format("{} {}: batch dimension {} differs between {} and indices {}", backend, what,
                                              i, table.to_string(), indices.shape.to_string()));
    g.batch *= table[i];
  }
  for (int i = batch_dims; i < axis; ++i) g.rest *= table[i];
  g.axis_len = table[axis];
  for (int i = batch_dims; i < indices.shape.rank(); ++i) g.n_idx *= indices.shape[i];
  for (int i = axis + 1; i < table.rank(); ++i) g.suffix *= table[i];
  return g;
}

ConvGeometry conv_geometry(std::string_view backend, const char* what, const Shape& x, const Shape& k, const Shape& y,
                           const Window2D& w) {
  if (x.rank() != 4 || k.rank() != 4 || y.rank() != 4)
    throw std::invalid_argument(fmt::format("{} {}: expects rank-4 NHWC tensors and an HWIO kernel, got {}, {}, {}", backend,
                                            what, x.to_string(), k.to_string(), y.to_string()));
  ConvGeometry g{x[0], x[1], x[2], x[3], y[1], y[2], y[3], k[0], k[1], k[2], 0, w.groups};
  if (g.groups < 1 || g.c % g.groups != 0 || g.o % g.groups != 0 || g.cg * g.groups != g.c || y[0] != x[0] ||
      k[3] != g.o || k[0] != w.kernel_h || k[1] != w.kernel_w)
    throw std::invalid_argument(fmt::format("{} {}: input {}, kernel {} and output {} do not fit (groups={})", backend, what,
                                            x.to_string(), k.to_string(), y.to_string(), g.groups));
  g.og = g.o / g.groups;
  return g;
}

bool is_pointwise(const ConvGeometry& g, const Window2D& w) {
  return g.kh == 1 && g.kw == 1 && w.stride_h == 1 && w.stride_w == 1 && w.pad_top == 0 && w.pad_left == 0 &&
         g.groups == 1 && g.oh == g.h && g.ow == g.w;
}

GemmArgs pointwise_conv_forward(const ConvGeometry& g, const float* x, const float* kernel, float* y) {
  return GemmArgs{.m = g.n * g.pixels(), .n = g.o, .k = g.c, .a = x, .lda = g.c, .b = kernel, .ldb = g.o, .c = y, .ldc = g.o};
}

GemmArgs pointwise_conv_backward_data(const ConvGeometry& g, const float* dy, const float* kernel, float* dx) {
  return GemmArgs{.transpose_b = true, .m = g.n * g.pixels(), .n = g.c, .k = g.o, .a = dy, .lda = g.o, .b = kernel,
                  .ldb = g.o, .c = dx, .ldc = g.c};
}

GemmArgs pointwise_conv_backward_filter(const ConvGeometry& g, const float* x, const float* dy, float* dkernel) {
  return GemmArgs{.transpose_a = true, .m = g.c, .n = g.o, .k = g.n * g.pixels(), .a = x, .lda = g.c, .b = dy,
                  .ldb = g.o, .c = dkernel, .ldc = g.o};
}

std::size_t optimizer_slots(const OptimizerUpdate& u, std::size_t given) {
  std::size_t needed = 0;
  switch (u.kind) {
    case OptimizerKind::sgd: needed = u.momentum > 0.f ? 1 : 0; break;
    case OptimizerKind::adam: needed = u.amsgrad ? 3 : 2; break;
    case OptimizerKind::rmsprop: needed = 1 + (u.momentum > 0.f ? 1 : 0) + (u.centered ? 1 : 0); break;
    case OptimizerKind::adagrad: needed = 1; break;
    case OptimizerKind::nadam: needed = 2; break;
    case OptimizerKind::adamax: needed = 2; break;
    case OptimizerKind::lion: needed = 1; break;
    case OptimizerKind::adadelta: needed = 2; break;
    case OptimizerKind::ftrl: needed = 2; break;
    case OptimizerKind::lamb: needed = 2; break;
    case OptimizerKind::adafactor: needed = 3; break;
  }
  const std::size_t with_average = needed + (u.ema ? 1 : 0);
  if (given != with_average)
    throw std::invalid_argument(fmt::format("optimizer_update: expected {} slots, got {}", with_average, given));
  return needed;
}

Shape adafactor_row_shape(const Shape& param) {
  if (param.rank() < 2) return Shape();
  const std::vector<std::int64_t> dims(param.begin(), param.end() - 1);
  return Shape(std::span<const std::int64_t>(dims));
}

Shape adafactor_column_shape(const Shape& param) {
  if (param.rank() < 2) return Shape();
  std::vector<std::int64_t> dims(param.begin(), param.end() - 2);
  dims.push_back(param[param.rank() - 1]);
  return Shape(std::span<const std::int64_t>(dims));
}

FactoredShape adafactor_shape(const Shape& param, const Shape& r, const Shape& c) {
  if (r != adafactor_row_shape(param) || c != adafactor_column_shape(param))
    throw std::invalid_argument(fmt::format("optimizer_update: adafactor's slots for a parameter {} must have shapes {} and {}, got {} and {}",
                                            param.to_string(), adafactor_row_shape(param).to_string(),
                                            adafactor_column_shape(param).to_string(), r.to_string(), c.to_string()));
  FactoredShape f;
  if (param.rank() < 2) return f;
  f.factored = true;
  f.rows = param[param.rank() - 2];
  f.cols = param[param.rank() - 1];
  f.batch = f.rows * f.cols == 0 ? 0 : param.numel() / (f.rows * f.cols);
  return f;
}

void check_copy_strided(const StridedView& src, const StridedView& dst, bool accumulate) {
  if (src.shape.rank() != dst.shape.rank())
    throw std::invalid_argument(fmt::format("copy_strided: ranks of {} and {} differ", src.shape.to_string(),
                                            dst.shape.to_string()));
  if (src.dtype != dst.dtype) throw std::invalid_argument("copy_strided: source and destination dtypes differ");
  if (accumulate && dst.dtype != DType::float32) throw std::invalid_argument("copy_strided: accumulation needs float32");
}

void check_rnn_cell_operands(RnnCellOp op, std::size_t inputs, std::size_t outputs) {
  const std::size_t want_in[] = {2, 5, 4, 3, 4, 4, 4}, want_out[] = {2, 1, 1, 1, 1, 1, 1};
  if (inputs != want_in[int(op)] || outputs != want_out[int(op)])
    throw std::invalid_argument(fmt::format("{}: wrong number of operands", rnn_cell_op_name(op)));
}

}  // namespace strata
