// Operand checks and index geometry that every backend's kernels share, so that all backends accept the
// same operands and refuse the rest with the same messages (prefixed with the backend's name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "backends/backend.h"

namespace strata {

// A tensor seen as (outer, axis, inner) around one axis.
struct AxisSplit {
  std::int64_t outer = 1, len = 1, inner = 1;
};
AxisSplit split_at(const Shape& s, int axis);

// gather/scatter_add: the table as (batch, rest, axis, suffix) and n_idx indices per batch element.
struct GatherGeometry {
  std::int64_t batch = 1;   // leading dims shared by table and indices
  std::int64_t rest = 1;    // remaining table dims before axis
  std::int64_t axis_len = 1;
  std::int64_t n_idx = 1;   // index entries per batch element
  std::int64_t suffix = 1;  // table dims after axis
};
GatherGeometry gather_geometry(std::string_view backend, const char* what, const Shape& table, const TensorView& indices,
                               int axis, int batch_dims);

// conv2d and its gradients: NHWC input (n, h, w, c), HWIO kernel, output (n, oh, ow, o); each of `groups`
// groups maps cg input channels to og output channels.
struct ConvGeometry {
  std::int64_t n, h, w, c, oh, ow, o, kh, kw, cg, og, groups;
  std::int64_t patch() const { return kh * kw * cg; }  // columns of one group's im2col matrix
  std::int64_t pixels() const { return oh * ow; }
};
ConvGeometry conv_geometry(std::string_view backend, const char* what, const Shape& x, const Shape& k, const Shape& y,
                           const Window2D& w);
// A 1x1 convolution with unit strides, no padding and one group: a single GEMM.
bool is_pointwise(const ConvGeometry& g, const Window2D& w);

// A pointwise convolution as the single GEMM of each pass (NHWC rows of pixels times the kernel).
GemmArgs pointwise_conv_forward(const ConvGeometry& g, const float* x, const float* kernel, float* y);
GemmArgs pointwise_conv_backward_data(const ConvGeometry& g, const float* dy, const float* kernel, float* dx);
GemmArgs pointwise_conv_backward_filter(const ConvGeometry& g, const float* x, const float* dy, float* dkernel);

// The number of state slots the update rule reads and writes, not counting the moving average that `ema` adds
// after them (see OptimizerUpdate); throws unless `given` counts both.
std::size_t optimizer_slots(const OptimizerUpdate& update, std::size_t given);

// Adafactor's view of a parameter of shape (..., rows, cols): `batch` matrices of rows x cols, whose second
// moment is factored into a row and a column slot; a parameter of rank 0 or 1 is not factored.
struct FactoredShape {
  bool factored = false;
  std::int64_t batch = 1, rows = 1, cols = 1;
};
// Throws unless the r and c slots have the shapes OptimizerUpdate documents for `param`.
FactoredShape adafactor_shape(const Shape& param, const Shape& r, const Shape& c);
// The shapes of adafactor's r and c slots for a parameter of shape `param`.
Shape adafactor_row_shape(const Shape& param);
Shape adafactor_column_shape(const Shape& param);

// Throws unless copy_strided's operands have one rank and dtype (float32 to accumulate).
void check_copy_strided(const StridedView& src, const StridedView& dst, bool accumulate);

// Throws unless rnn_cell gets the operand counts RnnCellOp documents.
void check_rnn_cell_operands(RnnCellOp op, std::size_t inputs, std::size_t outputs);

}  // namespace strata
