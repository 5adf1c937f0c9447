#include "graph/ops.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <numeric>
#include <stdexcept>

#include "graph/node_builder.h"
#include "graph/volume_ops.h"

namespace strata {

Tensor Operand::in(const std::shared_ptr<Graph>& graph) const {
  if (tensor_.valid()) {
    if (tensor_.graph_ptr() != graph)
      throw std::invalid_argument("operands come from different graphs; build a model's tensors from one set of inputs");
    return tensor_;
  }
  if (variable_) return Tensor(graph, graph->add_parameter(variable_));
  NodeAttrs attrs;
  attrs.value = *number_;
  return Tensor(graph, graph->add_node(OpKind::constant, std::move(attrs), {}));
}

namespace detail {

Tensor make(OpKind kind, NodeAttrs attrs, const std::vector<Tensor>& inputs) {
  if (inputs.empty()) throw std::invalid_argument(fmt::format("{}: needs at least one input", op_kind_name(kind)));
  const auto& graph = inputs[0].graph_ptr();
  std::vector<ValueId> ids;
  ids.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    if (!t.valid()) throw std::invalid_argument(fmt::format("{}: an input tensor is empty", op_kind_name(kind)));
    if (t.graph_ptr() != graph)
      throw std::invalid_argument(fmt::format("{}: inputs come from different graphs", op_kind_name(kind)));
    ids.push_back(t.id());
  }
  return Tensor(graph, graph->add_node(kind, std::move(attrs), std::move(ids)));
}

Tensor output_of(const Tensor& first, int index) {
  const Node& node = first.graph().node(first.graph().value(first.id()).producer);
  return Tensor(first.graph_ptr(), node.outputs.at(std::size_t(index)));
}

Tensor unary(UnaryOp op, const Tensor& x, float alpha) {
  NodeAttrs a;
  a.unary = op;
  a.alpha = alpha;
  return make(OpKind::unary, std::move(a), {x});
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  NodeAttrs attrs;
  attrs.binary = op;
  return make(OpKind::binary, std::move(attrs), {a, b});
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  NodeAttrs attrs;
  attrs.transpose_a = transpose_a;
  attrs.transpose_b = transpose_b;
  return make(OpKind::matmul, std::move(attrs), {a, b});
}

Tensor sum_to(const Tensor& grad, const Tensor& like, bool mean) {
  if (grad.shape() == like.shape()) return grad;
  NodeAttrs attrs;
  attrs.mean = mean;
  return make(OpKind::sum_to, std::move(attrs), {grad, like});
}

Tensor broadcast_like(const Tensor& x, const Tensor& like, bool mean) {
  NodeAttrs attrs;
  attrs.mean = mean;
  return make(OpKind::broadcast_like, std::move(attrs), {x, like});
}

Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  NodeAttrs attrs;
  attrs.reduce = op;
  attrs.keepdims = keepdims;
  if (axes.empty()) {
    for (int i = 0; i < x.rank(); ++i) attrs.axes.push_back(i);
  } else {
    for (int ax : axes) attrs.axes.push_back(x.shape().normalize_axis(ax));
  }
  return make(OpKind::reduce, std::move(attrs), {x});
}

}  // namespace detail

namespace ops {

using detail::make;

namespace {

// The graph shared by two operands, taken from whichever is a tensor.
std::shared_ptr<Graph> graph_of(const Operand& a, const Operand& b, std::string_view op) {
  if (a.tensor()) return a.tensor()->graph_ptr();
  if (b.tensor()) return b.tensor()->graph_ptr();
  throw std::invalid_argument(fmt::format("{}: at least one operand must be a tensor", op));
}

Tensor binary_op(BinaryOp op, const Operand& a, const Operand& b) {
  const auto g = graph_of(a, b, binary_op_name(op));
  return detail::binary(op, a.in(g), b.in(g));
}

// Fills a window's geometry for a 1-D (rank 3) or 2-D (rank 4) input, from Keras-style per-axis lists.
// With "same" padding, a stride above 1 over an unknown size leaves the padding to the plan: *same_at_plan
// is set (conv and pool; others pass null and refuse it).
Window2D make_window(std::string_view op, const Shape& x, std::int64_t kh, std::int64_t kw, std::vector<int> strides,
                     std::vector<int> dilation, const std::string& padding, bool* same_at_plan = nullptr) {
  const int spatial = x.rank() - 2;
  auto expand = [&](std::vector<int> v, const char* what) {
    if (v.size() == 1) v.resize(std::size_t(spatial), v[0]);
    if (int(v.size()) != spatial || std::any_of(v.begin(), v.end(), [](int s) { return s < 1; }))
      throw std::invalid_argument(fmt::format("{}: {} must be {} positive numbers for input {}", op, what, spatial,
                                              x.to_string()));
    return v;
  };
  strides = expand(std::move(strides), "strides");
  dilation = expand(std::move(dilation), "dilation_rate");
  Window2D w;
  w.kernel_h = kh;
  w.kernel_w = kw;
  w.stride_h = spatial == 2 ? strides[0] : 1;
  w.stride_w = strides[std::size_t(spatial - 1)];
  w.dilation_h = spatial == 2 ? dilation[0] : 1;
  w.dilation_w = dilation[std::size_t(spatial - 1)];
  if (padding == "same") {
    // With stride 1 the padding does not depend on the size (the dilated kernel's span less one), so an
    // unknown size (a sequence of any length) is padded alike; a larger stride leaves it to the plan.
    auto padding_of = [&](std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t dilation) {
      if (size >= 0) return same_padding(size, kernel, stride, dilation);
      if (stride != 1) {
        if (!same_at_plan)
          throw std::invalid_argument(fmt::format("{}: \"same\" padding with stride {} needs the spatial dimensions of {} known", op,
                                                  stride, x.to_string()));
        *same_at_plan = true;
        return std::array<std::int64_t, 2>{0, 0};
      }
      return same_padding((kernel - 1) * dilation + 1, kernel, 1, dilation);
    };
    const std::int64_t h = spatial == 2 ? x[1] : 1, wd = x[spatial];
    const auto ph = padding_of(h, kh, w.stride_h, w.dilation_h), pw = padding_of(wd, kw, w.stride_w, w.dilation_w);
    w.pad_top = ph[0];
    w.pad_bottom = ph[1];
    w.pad_left = pw[0];
    w.pad_right = pw[1];
  } else if (padding != "valid") {
    throw std::invalid_argument(fmt::format("{}: padding must be \"valid\" or \"same\", got \"{}\"", op, padding));
  }
  return w;
}

// Views a 1-D (N, W, C) tensor as (N, 1, W, C) for the 2-D primitives.
Tensor as_2d(const Tensor& x) {
  if (x.rank() == 4) return x;
  return reshape(x, {-1, 1, x.shape()[1], x.shape()[2]});
}

Tensor from_2d(const Tensor& y, int rank) {
  if (rank == 4) return y;
  return reshape(y, {-1, y.shape()[2], y.shape()[3]});
}

Tensor pool(PoolKind kind, const Tensor& x, std::vector<int> pool_size, std::vector<int> strides,
            const std::string& padding) {
  const char* name = kind == PoolKind::max ? "max_pool" : "average_pool";
  if (x.rank() == 5) return volume::pool(kind == PoolKind::max, x, std::move(pool_size), std::move(strides), padding);
  if (x.rank() != 3 && x.rank() != 4)
    throw std::invalid_argument(fmt::format("{}: input {} must be rank 3, 4 or 5 (channels_last)", name, x.shape().to_string()));
  const int spatial = x.rank() - 2;
  if (pool_size.size() == 1) pool_size.resize(std::size_t(spatial), pool_size[0]);
  if (int(pool_size.size()) != spatial)
    throw std::invalid_argument(fmt::format("{}: pool_size needs {} numbers", name, spatial));
  if (strides.empty()) strides = pool_size;
  NodeAttrs a;
  a.pool = kind;
  a.window = make_window(name, x.shape(), spatial == 2 ? pool_size[0] : 1, pool_size[std::size_t(spatial - 1)],
                         std::move(strides), {1}, padding, &a.same_padding_at_plan);
  return from_2d(make(OpKind::pool2d, std::move(a), {as_2d(x)}), x.rank());
}

}  // namespace

Tensor placeholder(Shape shape, DType dtype, std::string name) {
  auto g = default_graph();
  return Tensor(g, g->add_input(std::move(name), shape, dtype));
}

Tensor variable(const VariablePtr& v, const Tensor& like) { return Operand(v).in(like.graph_ptr()); }

Tensor constant(float value, const Tensor& like, Shape shape) {
  NodeAttrs attrs;
  attrs.value = value;
  attrs.constant_shape = shape;
  return Tensor(like.graph_ptr(), like.graph().add_node(OpKind::constant, std::move(attrs), {}));
}

Tensor full_like(const Tensor& like, float value) { return stop_gradient(detail::broadcast_like(constant(value, like), like)); }

Tensor add(const Operand& a, const Operand& b) { return binary_op(BinaryOp::add, a, b); }
Tensor subtract(const Operand& a, const Operand& b) { return binary_op(BinaryOp::subtract, a, b); }
Tensor multiply(const Operand& a, const Operand& b) { return binary_op(BinaryOp::multiply, a, b); }
Tensor divide(const Operand& a, const Operand& b) { return binary_op(BinaryOp::divide, a, b); }
Tensor power(const Operand& a, const Operand& b) { return binary_op(BinaryOp::power, a, b); }
Tensor maximum(const Operand& a, const Operand& b) { return binary_op(BinaryOp::maximum, a, b); }
Tensor minimum(const Operand& a, const Operand& b) { return binary_op(BinaryOp::minimum, a, b); }
Tensor greater(const Operand& a, const Operand& b) { return binary_op(BinaryOp::greater, a, b); }
Tensor greater_equal(const Operand& a, const Operand& b) { return binary_op(BinaryOp::greater_equal, a, b); }
Tensor less(const Operand& a, const Operand& b) { return binary_op(BinaryOp::less, a, b); }
Tensor less_equal(const Operand& a, const Operand& b) { return binary_op(BinaryOp::less_equal, a, b); }
Tensor equal(const Operand& a, const Operand& b) { return binary_op(BinaryOp::equal, a, b); }
Tensor not_equal(const Operand& a, const Operand& b) { return binary_op(BinaryOp::not_equal, a, b); }
Tensor clip(const Tensor& x, float lo, float hi) { return minimum(maximum(x, lo), hi); }

Tensor negative(const Tensor& x) { return detail::unary(UnaryOp::negative, x); }
Tensor abs(const Tensor& x) { return detail::unary(UnaryOp::abs, x); }
Tensor sign(const Tensor& x) { return detail::unary(UnaryOp::sign, x); }
Tensor exp(const Tensor& x) { return detail::unary(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return detail::unary(UnaryOp::log, x); }
Tensor log1p(const Tensor& x) { return detail::unary(UnaryOp::log1p, x); }
Tensor sqrt(const Tensor& x) { return detail::unary(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return detail::unary(UnaryOp::rsqrt, x); }
Tensor square(const Tensor& x) { return detail::unary(UnaryOp::square, x); }
Tensor reciprocal(const Tensor& x) { return detail::unary(UnaryOp::reciprocal, x); }
Tensor erf(const Tensor& x) { return detail::unary(UnaryOp::erf, x); }
Tensor sin(const Tensor& x) { return detail::unary(UnaryOp::sin, x); }
Tensor cos(const Tensor& x) { return detail::unary(UnaryOp::cos, x); }

Tensor relu(const Tensor& x) { return detail::unary(UnaryOp::relu, x); }
Tensor relu6(const Tensor& x) { return minimum(relu(x), 6.f); }
Tensor sigmoid(const Tensor& x) { return detail::unary(UnaryOp::sigmoid, x); }
Tensor tanh(const Tensor& x) { return detail::unary(UnaryOp::tanh, x); }
Tensor gelu(const Tensor& x, bool approximate) {
  return detail::unary(approximate ? UnaryOp::gelu_tanh : UnaryOp::gelu, x);
}
Tensor elu(const Tensor& x, float alpha) { return detail::unary(UnaryOp::elu, x, alpha); }
Tensor selu(const Tensor& x) { return detail::unary(UnaryOp::selu, x); }
Tensor softplus(const Tensor& x) { return detail::unary(UnaryOp::softplus, x); }
Tensor softsign(const Tensor& x) { return detail::unary(UnaryOp::softsign, x); }
Tensor leaky_relu(const Tensor& x, float negative_slope) {
  return detail::unary(UnaryOp::leaky_relu, x, negative_slope);
}
Tensor silu(const Tensor& x) { return detail::unary(UnaryOp::silu, x); }
Tensor swish(const Tensor& x) { return silu(x); }
Tensor hard_sigmoid(const Tensor& x) { return detail::unary(UnaryOp::hard_sigmoid, x); }

Tensor softmax(const Tensor& x, int axis) {
  NodeAttrs a;
  a.axis = x.shape().normalize_axis(axis);
  return make(OpKind::softmax, std::move(a), {x});
}

Tensor log_softmax(const Tensor& x, int axis) {
  NodeAttrs a;
  a.axis = x.shape().normalize_axis(axis);
  a.log = true;
  return make(OpKind::softmax, std::move(a), {x});
}

Tensor matmul(const Operand& a, const Operand& b) {
  const auto g = graph_of(a, b, "matmul");
  return detail::matmul(a.in(g), b.in(g), false, false);
}

Tensor sum(const Tensor& x, std::vector<int> axes, bool keepdims) {
  return detail::reduce(ReduceOp::sum, x, axes, keepdims);
}
Tensor mean(const Tensor& x, std::vector<int> axes, bool keepdims) {
  return detail::reduce(ReduceOp::mean, x, axes, keepdims);
}
Tensor max(const Tensor& x, std::vector<int> axes, bool keepdims) {
  return detail::reduce(ReduceOp::max, x, axes, keepdims);
}
Tensor min(const Tensor& x, std::vector<int> axes, bool keepdims) {
  return detail::reduce(ReduceOp::min, x, axes, keepdims);
}

Tensor argmax(const Tensor& x, int axis) {
  NodeAttrs a;
  a.axis = x.shape().normalize_axis(axis);
  return make(OpKind::argmax, std::move(a), {x});
}

Tensor reshape(const Tensor& x, std::vector<std::int64_t> new_shape) {
  NodeAttrs a;
  a.target = Shape(std::span<const std::int64_t>(new_shape));
  if (a.target == x.shape()) return x;
  // Several -1s keep the input's unknown dimensions (the batch and, say, a sequence's length) in order:
  // expand_dims or squeeze of a (batch, steps, features) tensor.
  if (std::count(new_shape.begin(), new_shape.end(), -1) > 1)
    for (int i = 0; i < x.rank(); ++i)
      if (x.shape()[i] < 0) a.unknown_from.push_back(i);
  return make(OpKind::reshape, std::move(a), {x});
}

Tensor reshape_like(const Tensor& x, std::vector<std::int64_t> new_shape, const Tensor& reference) {
  NodeAttrs a;
  a.target = Shape(std::span<const std::int64_t>(new_shape));
  for (int i = 0; i < reference.rank(); ++i)
    if (reference.shape()[i] < 0) a.unknown_from.push_back(i);
  if (a.unknown_from.rank() <= 1 && std::count(new_shape.begin(), new_shape.end(), -1) <= 1) return reshape(x, std::move(new_shape));
  return make(OpKind::reshape, std::move(a), {x, reference});
}

Tensor reshape_scaled(const Tensor& x, std::vector<std::int64_t> new_shape, std::vector<std::int64_t> scales) {
  NodeAttrs a;
  a.target = Shape(std::span<const std::int64_t>(new_shape));
  for (int i = 0; i < x.rank(); ++i)
    if (x.shape()[i] < 0) a.unknown_from.push_back(i);
  if (scales.size() != std::size_t(a.unknown_from.rank()))
    throw std::invalid_argument(fmt::format("reshape_scaled: {} scales for the {} unknown dimensions of {}", scales.size(),
                                            a.unknown_from.rank(), x.shape().to_string()));
  for (const std::int64_t s : scales) {
    if (s <= 0) throw std::invalid_argument(fmt::format("reshape_scaled: scales must be positive, got {}", s));
    a.unknown_scale.push_back(s);
  }
  return make(OpKind::reshape, std::move(a), {x});
}

Tensor transpose(const Tensor& x, std::vector<int> axes) {
  if (axes.empty())
    for (int i = x.rank() - 1; i >= 0; --i) axes.push_back(i);
  NodeAttrs a;
  for (int ax : axes) a.target.push_back(ax < 0 ? ax + x.rank() : ax);
  return make(OpKind::transpose, std::move(a), {x});
}

Tensor expand_dims(const Tensor& x, int axis) {
  const int at = axis < 0 ? axis + x.rank() + 1 : axis;
  if (at < 0 || at > x.rank())
    throw std::invalid_argument(fmt::format("expand_dims: axis {} is out of range for {}", axis, x.shape().to_string()));
  std::vector<std::int64_t> dims = x.shape().to_vector();
  dims.insert(dims.begin() + at, 1);
  // At most one unknown dimension: it becomes the inferred one.
  for (auto& d : dims) d = d < 0 ? -1 : d;
  return reshape(x, dims);
}

Tensor squeeze(const Tensor& x, int axis) {
  const int at = x.shape().normalize_axis(axis);
  if (x.shape()[at] != 1)
    throw std::invalid_argument(fmt::format("squeeze: dimension {} of {} is not 1", axis, x.shape().to_string()));
  std::vector<std::int64_t> dims = x.shape().to_vector();
  dims.erase(dims.begin() + at);
  return reshape(x, dims);
}

Tensor concatenate(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("concatenate: needs at least one tensor");
  NodeAttrs a;
  a.axis = xs[0].shape().normalize_axis(axis);
  return make(OpKind::concat, std::move(a), xs);
}

std::vector<Tensor> split(const Tensor& x, int count, int axis) {
  NodeAttrs a;
  a.axis = x.shape().normalize_axis(axis);
  a.count = count;
  const ValueId first = make(OpKind::split, std::move(a), {x}).id();
  const Node& node = x.graph().node(x.graph().value(first).producer);
  std::vector<Tensor> pieces;
  for (ValueId v : node.outputs) pieces.emplace_back(x.graph_ptr(), v);
  return pieces;
}

std::vector<Tensor> deferred(const std::vector<Tensor>& inputs, std::vector<Shape> output_shapes) {
  if (inputs.empty() || output_shapes.empty()) throw std::invalid_argument("deferred: needs inputs and output shapes");
  NodeAttrs a;
  a.output_shapes = std::move(output_shapes);
  Graph& g = inputs[0].graph();
  std::vector<ValueId> ids;
  for (const Tensor& t : inputs) ids.push_back(t.id());
  const ValueId first = g.add_node(OpKind::deferred, std::move(a), std::move(ids));
  std::vector<Tensor> outputs;
  for (ValueId v : g.node(g.value(first).producer).outputs) outputs.emplace_back(inputs[0].graph_ptr(), v);
  return outputs;
}

std::array<Tensor, 2> lstm_cell(const Tensor& z, const Tensor& c_prev) {
  NodeAttrs a;
  a.cell = RnnCellOp::lstm;
  const Tensor h = make(OpKind::rnn_cell, std::move(a), {z, c_prev});
  return {h, Tensor(z.graph_ptr(), h.id() + 1)};
}

Tensor gru_cell(const Tensor& x, const Tensor& r, const Tensor& h_prev) {
  NodeAttrs a;
  a.cell = RnnCellOp::gru;
  return make(OpKind::rnn_cell, std::move(a), {x, r, h_prev});
}

Tensor slice(const Tensor& x, std::vector<std::int64_t> start, std::vector<std::int64_t> shape) {
  NodeAttrs a;
  a.begin = Shape(std::span<const std::int64_t>(start));
  a.size = Shape(std::span<const std::int64_t>(shape));
  return make(OpKind::slice, std::move(a), {x});
}

Tensor pad(const Tensor& x, const std::vector<std::array<std::int64_t, 2>>& pad_width) {
  if (int(pad_width.size()) != x.rank())
    throw std::invalid_argument(fmt::format("pad: {} paddings for input {}", pad_width.size(), x.shape().to_string()));
  NodeAttrs a;
  for (const auto& [before, after] : pad_width) {
    a.begin.push_back(before);
    a.size.push_back(after);
  }
  return make(OpKind::pad, std::move(a), {x});
}

Tensor take(const Tensor& x, const Tensor& indices, int axis) { return gather(x, indices, axis, 0); }

Tensor gather(const Tensor& x, const Tensor& indices, int axis, int batch_dims) {
  NodeAttrs a;
  a.axis = x.shape().normalize_axis(axis);
  a.batch_dims = batch_dims;
  return make(OpKind::gather, std::move(a), {x, indices});
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  NodeAttrs a;
  a.dtype = dtype;
  return make(OpKind::cast, std::move(a), {x});
}

Tensor stop_gradient(const Tensor& x) { return make(OpKind::stop_gradient, NodeAttrs{}, {x}); }

Tensor conv(const Tensor& x, const Operand& kernel_operand, std::vector<int> strides, const std::string& padding,
            std::vector<int> dilation_rate) {
  const Tensor kernel = kernel_operand.in(x.graph_ptr());
  if (x.rank() == 5) return volume::conv(x, kernel, std::move(strides), padding, std::move(dilation_rate));
  const Shape& ks = kernel.shape();
  if (!((x.rank() == 3 && ks.rank() == 3) || (x.rank() == 4 && ks.rank() == 4)))
    throw std::invalid_argument(fmt::format("conv: input {} and kernel {} must be rank 3 (1-D), 4 (2-D) or 5 (3-D)",
                                            x.shape().to_string(), ks.to_string()));
  const std::int64_t channels = x.shape()[x.rank() - 1], kernel_in = ks[ks.rank() - 2];
  if (channels < 0 || kernel_in <= 0 || channels % kernel_in != 0)
    throw std::invalid_argument(fmt::format("conv: input {} has {} channels, not a multiple of kernel {}'s {}",
                                            x.shape().to_string(), channels, ks.to_string(), kernel_in));
  NodeAttrs a;
  a.window = make_window("conv", x.shape(), x.rank() == 4 ? ks[0] : 1, ks[ks.rank() - 3], std::move(strides),
                         std::move(dilation_rate), padding, &a.same_padding_at_plan);
  a.window.groups = channels / kernel_in;
  const Tensor k2 = x.rank() == 4 ? kernel : reshape(kernel, {1, ks[0], ks[1], ks[2]});
  return from_2d(make(OpKind::conv2d, std::move(a), {as_2d(x), k2}), x.rank());
}

TransposeAxis transpose_axis(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                             const std::string& padding, std::int64_t output_padding) {
  // The paddings do not depend on the input's size: an unknown size gives an unknown output size, which the plan
  // infers from them.
  const std::int64_t in = size < 0 ? 1 : size;
  const std::int64_t span = (kernel - 1) * dilation + 1;
  const bool given = output_padding >= 0;
  const std::int64_t extra = given ? output_padding : 0;
  if (given && extra >= std::max(stride, dilation))
    throw std::invalid_argument(fmt::format("conv_transpose: output_padding {} must be smaller than the stride {} or dilation {}",
                                            extra, stride, dilation));
  std::int64_t out = 0, left = 0;  // left: padding before, in the dilated-input formulation
  if (padding == "valid") {
    out = (in - 1) * stride + span + (given ? extra : std::max(span, stride) - span);
    left = span - 1;
  } else {
    // Keras: in * stride, or with output_padding (in - 1) * stride + span % 2 + output_padding.
    const std::int64_t pad_len = given ? span + span % 2 - 2 + extra : span + stride - 2;
    left = std::min(pad_len / 2 + pad_len % 2, span - 1);
    out = (in - 1) * stride + 1 + pad_len - span + 1;
  }
  TransposeAxis t;
  t.pad_before = span - 1 - left;
  t.pad_after = (in - 1) * stride + span - out - t.pad_before;
  t.size = size < 0 ? -1 : out;
  return t;
}

Tensor conv_transpose(const Tensor& x, const Operand& kernel_operand, std::vector<int> strides,
                      const std::string& padding, std::vector<int> output_padding, std::vector<int> dilation_rate) {
  const Tensor kernel = kernel_operand.in(x.graph_ptr());
  if (x.rank() == 5) return volume::conv_transpose(x, kernel, std::move(strides), padding, std::move(output_padding), std::move(dilation_rate));
  const Shape& ks = kernel.shape();
  if (!((x.rank() == 3 && ks.rank() == 3) || (x.rank() == 4 && ks.rank() == 4)))
    throw std::invalid_argument(fmt::format("conv_transpose: input {} and kernel {} must be rank 3 (1-D), 4 (2-D) or 5 (3-D)",
                                            x.shape().to_string(), ks.to_string()));
  const int spatial = x.rank() - 2;
  if (x.shape()[x.rank() - 1] != ks[ks.rank() - 1])
    throw std::invalid_argument(fmt::format("conv_transpose: input {} has {} channels but kernel {} expects {}",
                                            x.shape().to_string(), x.shape()[x.rank() - 1], ks.to_string(), ks[ks.rank() - 1]));
  // Geometry of the forward convolution (output -> input) whose adjoint this is.
  NodeAttrs a;
  a.window = make_window("conv_transpose", x.shape(), x.rank() == 4 ? ks[0] : 1, ks[ks.rank() - 3], std::move(strides),
                         std::move(dilation_rate), "valid");
  if (padding != "valid" && padding != "same")
    throw std::invalid_argument(fmt::format("conv_transpose: padding must be \"valid\" or \"same\", got \"{}\"", padding));
  if (output_padding.size() == 1) output_padding.resize(std::size_t(spatial), output_padding[0]);
  if (!output_padding.empty() && int(output_padding.size()) != spatial)
    throw std::invalid_argument(fmt::format("conv_transpose: output_padding needs {} numbers", spatial));
  for (const int extra : output_padding)
    if (extra < 0) throw std::invalid_argument(fmt::format("conv_transpose: output_padding must not be negative, got {}", extra));
  Window2D& w = a.window;
  auto axis = [&](std::int64_t size, std::int64_t kernel_size, std::int64_t stride, std::int64_t dilation, int op_index,
                  std::int64_t& pad_before, std::int64_t& pad_after) -> std::int64_t {
    const TransposeAxis t = transpose_axis(size, kernel_size, stride, dilation, padding,
                                           output_padding.empty() ? -1 : output_padding[std::size_t(op_index)]);
    pad_before = t.pad_before;
    pad_after = t.pad_after;
    return t.size;
  };
  const std::int64_t oh = spatial == 2 ? axis(x.shape()[1], ks[0], w.stride_h, w.dilation_h, 0, w.pad_top, w.pad_bottom) : 1;
  const std::int64_t ow = axis(x.shape()[spatial], ks[ks.rank() - 3], w.stride_w, w.dilation_w, spatial - 1, w.pad_left, w.pad_right);
  a.target = Shape{oh, ow};
  const Tensor k2 = x.rank() == 4 ? kernel : reshape(kernel, {1, ks[0], ks[1], ks[2]});
  return from_2d(make(OpKind::conv2d_transpose, std::move(a), {as_2d(x), k2}), x.rank());
}

Tensor max_pool(const Tensor& x, std::vector<int> pool_size, std::vector<int> strides, const std::string& padding) {
  return pool(PoolKind::max, x, std::move(pool_size), std::move(strides), padding);
}

Tensor average_pool(const Tensor& x, std::vector<int> pool_size, std::vector<int> strides,
                    const std::string& padding) {
  return pool(PoolKind::average, x, std::move(pool_size), std::move(strides), padding);
}

Tensor dropout(const Tensor& x, float rate, std::uint64_t seed, std::vector<std::int64_t> noise_shape) {
  if (!(rate >= 0.f && rate < 1.f))
    throw std::invalid_argument(fmt::format("dropout: rate must be in [0, 1), got {}", rate));
  if (rate == 0.f) return x;
  // The mask takes its shape from x, or from a corner of x one element thick along the shared dimensions.
  Tensor like = x;
  if (!noise_shape.empty()) {
    if (int(noise_shape.size()) != x.rank())
      throw std::invalid_argument(fmt::format("dropout: noise_shape ({}) does not fit input {}", fmt::join(noise_shape, ", "),
                                              x.shape().to_string()));
    std::vector<std::int64_t> begin(noise_shape.size(), 0), size;
    bool shared = false;
    for (int i = 0; i < x.rank(); ++i) {
      const std::int64_t n = noise_shape[std::size_t(i)];
      if (n == 1 && x.shape()[i] != 1) {
        size.push_back(1);
        shared = true;
      } else if (n < 0 || n == x.shape()[i]) {
        size.push_back(-1);
      } else {
        throw std::invalid_argument(fmt::format("dropout: noise_shape ({}) does not fit input {}: each entry is 1, -1 or the input's",
                                                fmt::join(noise_shape, ", "), x.shape().to_string()));
      }
    }
    if (shared) like = slice(x, begin, size);
  }
  NodeAttrs a;
  a.random = RandomKind::keep_mask;
  a.alpha = 1.f - rate;
  a.seed = seed;
  const Tensor mask = make(OpKind::random_like, std::move(a), {like});
  return in_train_phase(multiply(x, mask), x);
}

Tensor random_normal_like(const Tensor& x, float mean, float stddev, std::uint64_t seed) {
  if (!(stddev >= 0.f)) throw std::invalid_argument(fmt::format("random_normal_like: stddev must be at least 0, got {}", stddev));
  NodeAttrs a;
  a.random = RandomKind::normal;
  a.alpha = mean;
  a.beta = stddev;
  a.seed = seed;
  return make(OpKind::random_like, std::move(a), {x});
}

Tensor random_uniform_like(const Tensor& x, float low, float high, std::uint64_t seed) {
  if (!(low <= high)) throw std::invalid_argument(fmt::format("random_uniform_like: low {} is above high {}", low, high));
  NodeAttrs a;
  a.random = RandomKind::uniform;
  a.alpha = low;
  a.beta = high;
  a.seed = seed;
  return make(OpKind::random_like, std::move(a), {x});
}

Tensor in_train_phase(const Tensor& training, const Tensor& inference) {
  return make(OpKind::in_train_phase, NodeAttrs{}, {training, inference});
}

void assign(const VariablePtr& variable, const Tensor& value) {
  NodeAttrs a;
  a.variable = variable;
  make(OpKind::assign, std::move(a), {value});
}

}  // namespace ops
}  // namespace strata
