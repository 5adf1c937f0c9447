#include "graph/graph.h"

#include <atomic>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

namespace strata {

std::string_view op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::input: return "input";
    case OpKind::parameter: return "parameter";
    case OpKind::constant: return "constant";
    case OpKind::unary: return "unary";
    case OpKind::unary_backward: return "unary_backward";
    case OpKind::binary: return "binary";
    case OpKind::matmul: return "matmul";
    case OpKind::reduce: return "reduce";
    case OpKind::argmax: return "argmax";
    case OpKind::softmax: return "softmax";
    case OpKind::softmax_backward: return "softmax_backward";
    case OpKind::sum_to: return "sum_to";
    case OpKind::broadcast_like: return "broadcast_like";
    case OpKind::reshape: return "reshape";
    case OpKind::transpose: return "transpose";
    case OpKind::slice: return "slice";
    case OpKind::slice_backward: return "slice_backward";
    case OpKind::pad: return "pad";
    case OpKind::concat: return "concatenate";
    case OpKind::split: return "split";
    case OpKind::rnn_cell: return "rnn_cell";
    case OpKind::deferred: return "deferred";
    case OpKind::gather: return "gather";
    case OpKind::scatter_add: return "scatter_add";
    case OpKind::cast: return "cast";
    case OpKind::conv2d: return "conv";
    case OpKind::conv2d_backward_data: return "conv_backward_data";
    case OpKind::conv2d_backward_filter: return "conv_backward_filter";
    case OpKind::conv2d_transpose: return "conv_transpose";
    case OpKind::pool2d: return "pool";
    case OpKind::pool2d_backward: return "pool_backward";
    case OpKind::random_like: return "random";
    case OpKind::in_train_phase: return "in_train_phase";
    case OpKind::stop_gradient: return "stop_gradient";
    case OpKind::assign: return "assign";
  }
  return "unknown";
}

std::array<std::int64_t, 2> same_padding(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t dilation) {
  const std::int64_t out = (in + stride - 1) / stride;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * stride + (kernel - 1) * dilation + 1 - in, 0);
  return {total / 2, total - total / 2};
}

NodeAttrs attrs_for_shapes(OpKind kind, const NodeAttrs& attrs, const std::vector<Shape>& input_shapes) {
  if (!attrs.same_padding_at_plan) return attrs;
  // The forward input: conv2d_backward_data holds it third (for its shape), the others first.
  const std::size_t at = kind == OpKind::conv2d_backward_data ? 2 : 0;
  NodeAttrs resolved = attrs;
  resolved.same_padding_at_plan = false;
  if (input_shapes.size() <= at || input_shapes[at].rank() != 4) return resolved;
  const Shape& x = input_shapes[at];
  Window2D& w = resolved.window;
  const auto ph = same_padding(x[1], w.kernel_h, w.stride_h, w.dilation_h), pw = same_padding(x[2], w.kernel_w, w.stride_w, w.dilation_w);
  w.pad_top = ph[0];
  w.pad_bottom = ph[1];
  w.pad_left = pw[0];
  w.pad_right = pw[1];
  return resolved;
}

bool is_shape_only_input(OpKind kind, int i) {
  switch (kind) {
    case OpKind::sum_to:
    case OpKind::broadcast_like:
    case OpKind::slice_backward:
    case OpKind::reshape: return i == 1;  // reshape_like's reference
    case OpKind::scatter_add:
    case OpKind::conv2d_backward_data:
    case OpKind::conv2d_backward_filter: return i == 2;
    case OpKind::random_like: return i == 0;
    default: return false;
  }
}

namespace {

[[noreturn]] void fail(std::string_view op, const std::string& message) {
  throw std::invalid_argument(fmt::format("{}: {}", op, message));
}

std::string shapes_of(std::span<const ShapeAndType> in, std::string_view sep) {
  std::vector<std::string> shapes;
  for (const auto& v : in) shapes.push_back(v.shape.to_string());
  return fmt::format("{}", fmt::join(shapes, sep));
}

// Two dimensions that must agree; -1 (unknown) agrees with anything.
bool dims_compatible(std::int64_t a, std::int64_t b) { return a < 0 || b < 0 || a == b; }
std::int64_t merge_dim(std::int64_t a, std::int64_t b) { return a < 0 ? b : a; }

void require_float(std::string_view op, const ShapeAndType& v) {
  if (!is_floating(v.dtype))
    fail(op, fmt::format("expects a floating-point tensor, got {} of shape {}", dtype_name(v.dtype), v.shape.to_string()));
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < rank; ++i) {
    const int ia = i - (rank - a.rank()), ib = i - (rank - b.rank());
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    std::int64_t d;
    if (da == db) d = da;
    else if (da == 1) d = db;
    else if (db == 1) d = da;
    else if (da < 0) d = db;
    else if (db < 0) d = da;
    else fail(op, fmt::format("{} and {} cannot be broadcast together (dimension {}: {} vs {})", a.to_string(),
                              b.to_string(), i, da, db));
    out.push_back(d);
  }
  return out;
}

std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                              std::int64_t pad_before, std::int64_t pad_after) {
  if (in < 0) return -1;
  const std::int64_t span = dilation * (kernel - 1) + 1;
  const std::int64_t padded = in + pad_before + pad_after;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

}  // namespace

std::vector<ShapeAndType> infer_outputs(OpKind kind, const NodeAttrs& a, std::span<const ShapeAndType> in) {
  const std::string_view op = kind == OpKind::unary    ? unary_op_name(a.unary)
                              : kind == OpKind::binary ? binary_op_name(a.binary)
                              : kind == OpKind::reduce ? reduce_op_name(a.reduce)
                                                       : op_kind_name(kind);
  switch (kind) {
    case OpKind::input:
    case OpKind::parameter:
      fail(op, "has no inputs to infer from");
    case OpKind::constant:
      return {{a.constant_shape, a.dtype}};
    case OpKind::unary:
      require_float(op, in[0]);
      return {in[0]};
    case OpKind::unary_backward:
    case OpKind::softmax_backward:
      return {in[in.size() - 1]};
    case OpKind::binary: {
      require_float(op, in[0]);
      require_float(op, in[1]);
      return {{broadcast_shapes(op, in[0].shape, in[1].shape), in[0].dtype}};
    }
    case OpKind::matmul: {
      const Shape &x = in[0].shape, &y = in[1].shape;
      require_float(op, in[0]);
      require_float(op, in[1]);
      if (x.rank() < 2 || y.rank() < 2)
        fail(op, fmt::format("{} x {}: both operands need rank 2 or more", x.to_string(), y.to_string()));
      const std::int64_t m = a.transpose_a ? x[x.rank() - 1] : x[x.rank() - 2];
      const std::int64_t kx = a.transpose_a ? x[x.rank() - 2] : x[x.rank() - 1];
      const std::int64_t ky = a.transpose_b ? y[y.rank() - 1] : y[y.rank() - 2];
      const std::int64_t n = a.transpose_b ? y[y.rank() - 2] : y[y.rank() - 1];
      if (!dims_compatible(kx, ky))
        fail(op, fmt::format("{} x {}: inner dimensions {} and {} differ", x.to_string(), y.to_string(), kx, ky));
      Shape out;
      if (y.rank() == 2) {
        if (a.transpose_a && x.rank() > 2)
          fail(op, fmt::format("{} x {}: a transposed operand must be a matrix", x.to_string(), y.to_string()));
        for (int i = 0; i < x.rank() - 2; ++i) out.push_back(x[i]);
      } else {
        if (x.rank() != y.rank())
          fail(op, fmt::format("{} x {}: batched operands need the same rank", x.to_string(), y.to_string()));
        for (int i = 0; i < x.rank() - 2; ++i) {
          if (!dims_compatible(x[i], y[i]))
            fail(op, fmt::format("{} x {}: batch dimensions {} and {} differ", x.to_string(), y.to_string(), x[i], y[i]));
          out.push_back(merge_dim(x[i], y[i]));
        }
      }
      out.push_back(m);
      out.push_back(n);
      return {{out, in[0].dtype}};
    }
    case OpKind::reduce: {
      require_float(op, in[0]);
      const Shape& x = in[0].shape;
      bool reduced[kMaxRank] = {};
      for (auto ax : a.axes) reduced[x.normalize_axis(int(ax))] = true;
      Shape out;
      for (int i = 0; i < x.rank(); ++i) {
        if (!reduced[i]) out.push_back(x[i]);
        else if (a.keepdims) out.push_back(1);
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::argmax: {
      const Shape& x = in[0].shape;
      const int axis = x.normalize_axis(a.axis);
      Shape out;
      for (int i = 0; i < x.rank(); ++i)
        if (i != axis) out.push_back(x[i]);
      return {{out, DType::int32}};
    }
    case OpKind::softmax:
      require_float(op, in[0]);
      in[0].shape.normalize_axis(a.axis);
      return {in[0]};
    case OpKind::sum_to:
    case OpKind::broadcast_like:
    case OpKind::slice_backward:
      return {{in[1].shape, in[0].dtype}};
    case OpKind::reshape: {
      const Shape& x = in[0].shape;
      // The target as the user wrote it, -1 included.
      const std::string target = fmt::format("({})", fmt::join(a.target.to_vector(), ", "));
      const std::int64_t total = x.numel();
      std::int64_t known = 1;
      int infer_at = -1;
      if (a.unknown_from.rank() > 0) {
        // Each -1 copies one of the (trace-time) unknown dimensions of the input, or of the reference
        // (reshape_like), in order.
        // With unknown_scale, a -1 is that dimension times its scale (a merge of it with known dimensions).
        const Shape& source = in.size() > 1 ? in[1].shape : x;
        Shape out = a.target;
        std::size_t next = 0;
        std::int64_t unknown_scales = 1;  // of the -1s still unknown: known elements they hold
        for (int i = 0; i < out.rank(); ++i)
          if (out[i] == -1) {
            if (next >= std::size_t(a.unknown_from.rank()) || a.unknown_from[int(next)] >= source.rank())
              fail(op, fmt::format("target {} has more -1s than {} has unknown dimensions", target, source.to_string()));
            const std::int64_t scale = a.unknown_scale.rank() > 0 ? a.unknown_scale[int(next)] : 1;
            const std::int64_t d = source[int(a.unknown_from[int(next++)])];
            out[i] = d < 0 ? -1 : d * scale;
            if (d < 0) unknown_scales *= scale;
          }
        // The known parts must match, unless x's unknown dimensions are not the reference's (a gradient's
        // reshape_like, say, whose x merged them with known ones): then the plan checks the concrete sizes.
        std::int64_t x_known = 1, out_known = unknown_scales;
        for (auto d : x) x_known *= d < 0 ? 1 : d;
        for (auto d : out) out_known *= d < 0 ? 1 : d;
        const bool comparable = in.size() == 1 || (x.is_fully_known() && out.is_fully_known());
        if (next != std::size_t(a.unknown_from.rank()) || (comparable && x_known != out_known))
          fail(op, fmt::format("cannot reshape {} into {}", x.to_string(), target));
        return {{out, in[0].dtype}};
      }
      for (int i = 0; i < a.target.rank(); ++i) {
        if (a.target[i] == -1) {
          if (infer_at >= 0) fail(op, fmt::format("target {} has more than one -1", target));
          infer_at = i;
        } else {
          known *= a.target[i];
        }
      }
      Shape out = a.target;
      // The known part of the input: every dimension but the unknown (batch) one.
      std::int64_t x_known = 1;
      bool x_has_unknown = false;
      for (auto d : x) {
        if (d < 0) x_has_unknown = true;
        else x_known *= d;
      }
      if (infer_at >= 0) {
        if (x_has_unknown) {
          // The inferred dimension absorbs the unknown one (x_known a multiple of known) or splits it
          // ((batch * steps, ...) into (batch, steps, ...): known a multiple of x_known); the plan computes it
          // from the concrete shape and checks there that it divides.
          if (known == 0 || (x_known % known != 0 && known % x_known != 0))
            fail(op, fmt::format("cannot reshape {} into {}", x.to_string(), target));
          out[infer_at] = -1;
        } else {
          if (known == 0 || total % known != 0)
            fail(op, fmt::format("cannot reshape {} ({} elements) into {}", x.to_string(), total, target));
          out[infer_at] = total / known;
        }
      } else if (x_has_unknown || known != total) {
        fail(op, fmt::format("cannot reshape {} into {}", x.to_string(), target));
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::transpose: {
      const Shape& x = in[0].shape;
      if (a.target.rank() != x.rank())
        fail(op, fmt::format("permutation ({}) does not fit {}", fmt::join(a.target.to_vector(), ", "), x.to_string()));
      Shape out;
      bool seen[kMaxRank] = {};
      for (auto p : a.target) {
        if (p < 0 || p >= x.rank() || seen[p])
          fail(op, fmt::format("({}) is not a permutation of the axes of {}", fmt::join(a.target.to_vector(), ", "),
                               x.to_string()));
        seen[p] = true;
        out.push_back(x[int(p)]);
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::slice: {
      const Shape& x = in[0].shape;
      if (a.begin.rank() != x.rank() || a.size.rank() != x.rank())
        fail(op, fmt::format("begin {} and size {} must have the rank of {}", a.begin.to_string(), a.size.to_string(),
                             x.to_string()));
      Shape out;
      for (int i = 0; i < x.rank(); ++i) {
        // A negative size -1 - n runs to n short of the end.
        const std::int64_t b = a.begin[i], s = a.size[i], short_of_end = s < 0 ? -1 - s : 0;
        if (b < 0 || (x[i] >= 0 && (b + short_of_end > x[i] || (s >= 0 && b + s > x[i]))))
          fail(op, fmt::format("begin {} and size {} fall outside {}", a.begin.to_string(), a.size.to_string(),
                               x.to_string()));
        out.push_back(s >= 0 ? s : (x[i] < 0 ? -1 : x[i] - b - short_of_end));
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::pad: {
      const Shape& x = in[0].shape;
      if (a.begin.rank() != x.rank() || a.size.rank() != x.rank())
        fail(op, fmt::format("paddings {} and {} must have the rank of {}", a.begin.to_string(), a.size.to_string(),
                             x.to_string()));
      Shape out;
      for (int i = 0; i < x.rank(); ++i) {
        // An unknown dimension (a sequence of any length) stays unknown; the plan pads the concrete one.
        if (a.begin[i] < 0 || a.size[i] < 0)
          fail(op, fmt::format("cannot pad {} by {} and {}", x.to_string(), a.begin.to_string(), a.size.to_string()));
        out.push_back(x[i] < 0 ? -1 : x[i] + a.begin[i] + a.size[i]);
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::concat: {
      const Shape& first = in[0].shape;
      const int axis = first.normalize_axis(a.axis);
      Shape out = first;
      for (std::size_t k = 1; k < in.size(); ++k) {
        const Shape& s = in[k].shape;
        if (s.rank() != first.rank() || in[k].dtype != in[0].dtype)
          fail(op, fmt::format("inputs {} differ in rank or dtype", shapes_of(in, ", ")));
        for (int i = 0; i < s.rank(); ++i) {
          if (i == axis) {
            out[i] = (out[i] < 0 || s[i] < 0) ? -1 : out[i] + s[i];
          } else if (!dims_compatible(out[i], s[i])) {
            fail(op, fmt::format("inputs {} differ in dimension {} (only axis {} may differ)", shapes_of(in, ", "), i,
                                 axis));
          } else {
            out[i] = merge_dim(out[i], s[i]);
          }
        }
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::split: {
      const Shape& x = in[0].shape;
      const int axis = x.normalize_axis(a.axis);
      if (a.count <= 0 || x[axis] < 0 || x[axis] % a.count != 0)
        fail(op, fmt::format("cannot split {} into {} equal pieces along axis {}", x.to_string(), a.count, axis));
      Shape piece = x;
      piece[axis] = x[axis] / a.count;
      return std::vector<ShapeAndType>(std::size_t(a.count), ShapeAndType{piece, in[0].dtype});
    }
    case OpKind::rnn_cell: {
      const std::size_t operands[] = {2, 5, 4, 3, 4, 4, 4};
      if (in.size() != operands[int(a.cell)]) fail(op, fmt::format("{} takes {} operands", rnn_cell_op_name(a.cell), operands[int(a.cell)]));
      for (const auto& t : in)
        if (t.dtype != DType::float32 || t.shape.rank() != 2) fail(op, fmt::format("{} takes (batch, features) float32 operands", rnn_cell_op_name(a.cell)));
      const Shape& z = in[0].shape;
      const bool lstm = a.cell == RnnCellOp::lstm || a.cell == RnnCellOp::lstm_grad_z || a.cell == RnnCellOp::lstm_grad_c;
      if (z[1] <= 0 || z[1] % (lstm ? 4 : 3) != 0) fail(op, fmt::format("{}: gate width {} is not a multiple of {}", rnn_cell_op_name(a.cell), z[1], lstm ? 4 : 3));
      const Shape units{z[0], z[1] / (lstm ? 4 : 3)};
      switch (a.cell) {
        case RnnCellOp::lstm: return {{units, DType::float32}, {units, DType::float32}};
        case RnnCellOp::lstm_grad_z:
        case RnnCellOp::gru_grad_x:
        case RnnCellOp::gru_grad_r: return {{z, DType::float32}};
        default: return {{units, DType::float32}};
      }
    }
    case OpKind::deferred: {
      std::vector<ShapeAndType> out;
      for (const Shape& shape : a.output_shapes) out.push_back({shape, a.dtype});
      return out;
    }
    case OpKind::gather: {
      const Shape &t = in[0].shape, &idx = in[1].shape;
      if (in[1].dtype != DType::int32 && in[1].dtype != DType::int64)
        fail(op, fmt::format("indices must be int32 or int64, got {}", dtype_name(in[1].dtype)));
      const int axis = t.normalize_axis(a.axis);
      if (a.batch_dims > axis || a.batch_dims > idx.rank())
        fail(op, fmt::format("batch_dims {} exceeds axis {} of {} or the rank of indices {}", a.batch_dims, axis,
                             t.to_string(), idx.to_string()));
      Shape out;
      for (int i = 0; i < axis; ++i) {
        if (i < a.batch_dims && !dims_compatible(t[i], idx[i]))
          fail(op, fmt::format("batch dimension {} differs between {} and indices {}", i, t.to_string(), idx.to_string()));
        out.push_back(i < a.batch_dims ? merge_dim(t[i], idx[i]) : t[i]);
      }
      for (int i = a.batch_dims; i < idx.rank(); ++i) out.push_back(idx[i]);
      for (int i = axis + 1; i < t.rank(); ++i) out.push_back(t[i]);
      return {{out, in[0].dtype}};
    }
    case OpKind::scatter_add:
      return {{in[2].shape, in[0].dtype}};
    case OpKind::cast:
      return {{in[0].shape, a.dtype}};
    case OpKind::conv2d: {
      const Shape &x = in[0].shape, &k = in[1].shape;
      const Window2D& w = a.window;
      if (x.rank() != 4 || k.rank() != 4)
        fail(op, fmt::format("input {} and kernel {} must be rank 4 (NHWC and HWIO)", x.to_string(), k.to_string()));
      if (k[0] != w.kernel_h || k[1] != w.kernel_w)
        fail(op, fmt::format("kernel {} does not match window {}x{}", k.to_string(), w.kernel_h, w.kernel_w));
      if (x[3] >= 0 && x[3] != k[2] * w.groups)
        fail(op, fmt::format("input {} has {} channels but kernel {} with groups={} expects {}", x.to_string(), x[3],
                             k.to_string(), w.groups, k[2] * w.groups));
      if (k[3] % w.groups != 0)
        fail(op, fmt::format("kernel {}: {} filters are not divisible by groups={}", k.to_string(), k[3], w.groups));
      const std::int64_t oh = conv_output_size(x[1], w.kernel_h, w.stride_h, w.dilation_h, w.pad_top, w.pad_bottom);
      const std::int64_t ow = conv_output_size(x[2], w.kernel_w, w.stride_w, w.dilation_w, w.pad_left, w.pad_right);
      if (oh == 0 || ow == 0)
        fail(op, fmt::format("input {} is smaller than the kernel {}", x.to_string(), k.to_string()));
      return {{Shape{x[0], oh, ow, k[3]}, in[0].dtype}};
    }
    case OpKind::conv2d_backward_data:
    case OpKind::conv2d_backward_filter:
      return {{in[2].shape, in[0].dtype}};
    case OpKind::conv2d_transpose: {
      // The kernel maps the output's k[2] channels to the input's k[3], as the conv2d whose adjoint this is.
      const Shape &x = in[0].shape, &k = in[1].shape;
      const Window2D& w = a.window;
      if (x.rank() != 4 || k.rank() != 4 || a.target.rank() != 2)
        fail(op, fmt::format("input {} and kernel {} must be rank 4 (NHWC and HWOI)", x.to_string(), k.to_string()));
      if (k[0] != w.kernel_h || k[1] != w.kernel_w || w.groups != 1)
        fail(op, fmt::format("kernel {} does not match window {}x{}", k.to_string(), w.kernel_h, w.kernel_w));
      if (x[3] >= 0 && x[3] != k[3])
        fail(op, fmt::format("input {} has {} channels but kernel {} expects {}", x.to_string(), x[3], k.to_string(), k[3]));
      // An output size unknown when traced (-1) is the one whose forward convolution gives back the input's size.
      auto output_size = [](std::int64_t target, std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                            std::int64_t pad_before, std::int64_t pad_after) {
        if (target >= 0 || in < 0) return target;
        return (in - 1) * stride + dilation * (kernel - 1) + 1 - pad_before - pad_after;
      };
      const std::int64_t oh = output_size(a.target[0], x[1], w.kernel_h, w.stride_h, w.dilation_h, w.pad_top, w.pad_bottom);
      const std::int64_t ow = output_size(a.target[1], x[2], w.kernel_w, w.stride_w, w.dilation_w, w.pad_left, w.pad_right);
      // The forward convolution of the output must give back the input's size.
      const std::int64_t ih = conv_output_size(oh, w.kernel_h, w.stride_h, w.dilation_h, w.pad_top, w.pad_bottom);
      const std::int64_t iw = conv_output_size(ow, w.kernel_w, w.stride_w, w.dilation_w, w.pad_left, w.pad_right);
      if ((x[1] >= 0 && ih >= 0 && ih != x[1]) || (x[2] >= 0 && iw >= 0 && iw != x[2]))
        fail(op, fmt::format("output size {}x{} does not fit input {}", oh, ow, x.to_string()));
      return {{Shape{x[0], oh, ow, k[2]}, in[0].dtype}};
    }
    case OpKind::pool2d: {
      const Shape& x = in[0].shape;
      const Window2D& w = a.window;
      if (x.rank() != 4) fail(op, fmt::format("input {} must be rank 4 (NHWC)", x.to_string()));
      const std::int64_t oh = conv_output_size(x[1], w.kernel_h, w.stride_h, 1, w.pad_top, w.pad_bottom);
      const std::int64_t ow = conv_output_size(x[2], w.kernel_w, w.stride_w, 1, w.pad_left, w.pad_right);
      if (oh == 0 || ow == 0)
        fail(op, fmt::format("input {} is smaller than the pool window {}x{}", x.to_string(), w.kernel_h, w.kernel_w));
      return {{Shape{x[0], oh, ow, x[3]}, in[0].dtype}};
    }
    case OpKind::pool2d_backward:
      return {in[0]};
    case OpKind::random_like:
      return {{in[0].shape, DType::float32}};
    case OpKind::in_train_phase: {
      const Shape &x = in[0].shape, &y = in[1].shape;
      if (x.rank() != y.rank() || in[0].dtype != in[1].dtype)
        fail(op, fmt::format("branches {} and {} differ", x.to_string(), y.to_string()));
      Shape out = x;
      for (int i = 0; i < x.rank(); ++i) {
        if (!dims_compatible(x[i], y[i])) fail(op, fmt::format("branches {} and {} differ", x.to_string(), y.to_string()));
        out[i] = merge_dim(x[i], y[i]);
      }
      return {{out, in[0].dtype}};
    }
    case OpKind::stop_gradient:
      return {in[0]};
    case OpKind::assign: {
      const Shape& target = a.variable->shape();
      const Shape& v = in[0].shape;
      bool ok = v.rank() == target.rank() && in[0].dtype == a.variable->dtype();
      for (int i = 0; ok && i < v.rank(); ++i) ok = dims_compatible(v[i], target[i]);
      if (!ok)
        fail(op, fmt::format("value {} does not fit variable '{}' of shape {}", v.to_string(), a.variable->name(),
                             target.to_string()));
      return {};
    }
  }
  fail(op, "unknown operation");
}

ValueId Graph::add_node(OpKind kind, NodeAttrs attrs, std::vector<ValueId> inputs) {
  std::vector<ShapeAndType> in;
  in.reserve(inputs.size());
  for (ValueId v : inputs) {
    if (v < 0 || v >= num_values())
      throw std::invalid_argument(fmt::format("{}: input tensor belongs to another graph", op_kind_name(kind)));
    in.push_back({value(v).shape, value(v).dtype});
  }
  std::vector<ShapeAndType> out;
  if (kind == OpKind::parameter) {
    out.push_back({attrs.variable->shape(), attrs.variable->dtype()});
  } else {
    try {
      out = infer_outputs(kind, attrs, in);
    } catch (const std::invalid_argument& e) {
      const std::string scope = current_scope();
      if (scope.empty()) throw;
      throw std::invalid_argument(fmt::format("{}: {}", scope, e.what()));
    }
  }
  Node node{kind, std::move(attrs), std::move(inputs), {}, current_scope()};
  const int index = int(nodes_.size());
  for (auto& o : out) {
    node.outputs.push_back(num_values());
    values_.push_back(ValueInfo{o.shape, o.dtype, index, {}});
  }
  nodes_.push_back(std::move(node));
  if (kind == OpKind::assign) side_effects_.push_back(index);
  return nodes_.back().outputs.empty() ? -1 : nodes_.back().outputs[0];
}

ValueId Graph::add_input(std::string name, Shape shape, DType dtype) {
  NodeAttrs attrs;
  attrs.dtype = dtype;
  const int index = int(nodes_.size());
  nodes_.push_back(Node{OpKind::input, std::move(attrs), {}, {num_values()}, current_scope()});
  values_.push_back(ValueInfo{shape, dtype, index, std::move(name)});
  return nodes_.back().outputs[0];
}

ValueId Graph::add_parameter(const VariablePtr& variable) {
  if (auto it = parameters_.find(variable.get()); it != parameters_.end()) return it->second;
  NodeAttrs attrs;
  attrs.variable = variable;
  const ValueId v = add_node(OpKind::parameter, std::move(attrs), {});
  parameters_.emplace(variable.get(), v);
  return v;
}

namespace {
thread_local std::shared_ptr<Graph> current_graph;
}

std::shared_ptr<Graph> default_graph() {
  if (!current_graph) current_graph = std::make_shared<Graph>();
  return current_graph;
}

namespace {
thread_local std::unordered_map<std::string, int> name_counts;
std::atomic<std::uint64_t> global_seed{0x5eed5eedull}, seed_counter{0};
}  // namespace

void clear_session() {
  current_graph = std::make_shared<Graph>();
  name_counts.clear();
}

GraphScope::GraphScope(std::shared_ptr<Graph> graph) : previous_(default_graph()) { current_graph = std::move(graph); }
GraphScope::~GraphScope() { current_graph = std::move(previous_); }

std::string unique_object_name(const std::string& prefix) {
  const int n = name_counts[prefix]++;
  return n == 0 ? prefix : fmt::format("{}_{}", prefix, n);
}

void set_random_seed(std::uint64_t seed) {
  global_seed = seed;
  seed_counter = 0;
}

std::uint64_t next_random_seed() {
  // splitmix64 of (seed, counter): well-spread seeds from a small integer.
  std::uint64_t x = global_seed.load() + 0x9E3779B97F4A7C15ull * (seed_counter.fetch_add(1) + 1);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace strata
