// The gradient rule of every primitive, written with the same ops as forward code; backends never see them.
#include "graph/autodiff.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/node_builder.h"
#include "graph/ops.h"

namespace strata {

namespace {

using detail::make;

Tensor unary_grad(const Node& node, const Tensor& x, const Tensor& y, const Tensor& dy) {
  NodeAttrs a;
  a.unary = node.attrs.unary;
  a.alpha = node.attrs.alpha;
  // Each derivative reads either x or y; passing the one it reads in both places lets the planner free
  // the other as soon as the forward is done with it.
  const Tensor& read = unary_backward_uses_output(node.attrs.unary) ? y : x;
  return make(OpKind::unary_backward, std::move(a), {read, read, dy});
}

// Input gradients of one node, given its inputs, outputs and output gradients (invalid where none flows).
std::vector<Tensor> rule(const Node& node, const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                         const std::vector<Tensor>& dout) {
  const Tensor& dy = dout[0];
  const NodeAttrs& at = node.attrs;
  switch (node.kind) {
    case OpKind::input:
    case OpKind::parameter:
    case OpKind::constant:
    case OpKind::argmax:
    case OpKind::random_like:
    case OpKind::stop_gradient:
    case OpKind::assign:
      return std::vector<Tensor>(in.size());
    case OpKind::unary:
      return {unary_grad(node, in[0], out[0], dy)};
    case OpKind::binary: {
      const Tensor &a = in[0], &b = in[1];
      switch (at.binary) {
        case BinaryOp::add: return {detail::sum_to(dy, a), detail::sum_to(dy, b)};
        case BinaryOp::subtract: return {detail::sum_to(dy, a), detail::sum_to(ops::negative(dy), b)};
        case BinaryOp::multiply:
          return {detail::sum_to(ops::multiply(dy, b), a), detail::sum_to(ops::multiply(dy, a), b)};
        case BinaryOp::divide:
          return {detail::sum_to(ops::divide(dy, b), a),
                  detail::sum_to(ops::negative(ops::divide(ops::multiply(dy, out[0]), b)), b)};
        case BinaryOp::power:
          return {detail::sum_to(ops::multiply(dy, ops::multiply(b, ops::power(a, ops::subtract(b, 1.f)))), a),
                  detail::sum_to(ops::multiply(dy, ops::multiply(out[0], ops::log(a))), b)};
        case BinaryOp::maximum: {
          // Ties go to the first operand, as the kernel picks it.
          const Tensor pick_a = ops::greater_equal(a, b);
          return {detail::sum_to(ops::multiply(dy, pick_a), a),
                  detail::sum_to(ops::multiply(dy, ops::subtract(1.f, pick_a)), b)};
        }
        case BinaryOp::minimum: {
          const Tensor pick_a = ops::less_equal(a, b);
          return {detail::sum_to(ops::multiply(dy, pick_a), a),
                  detail::sum_to(ops::multiply(dy, ops::subtract(1.f, pick_a)), b)};
        }
        default:  // comparisons are piecewise constant
          return {Tensor(), Tensor()};
      }
    }
    case OpKind::matmul: {
      const Tensor &a = in[0], &b = in[1];
      const bool ta = at.transpose_a, tb = at.transpose_b;
      if (b.rank() == 2 && a.rank() > 2) {
        // Folded leading dimensions: the kernel gradient sums over them.
        const std::int64_t k = a.shape()[a.rank() - 1], n = dy.shape()[dy.rank() - 1];
        const Tensor a2 = ops::reshape(a, {-1, k}), dy2 = ops::reshape(dy, {-1, n});
        const Tensor da = detail::matmul(dy, b, false, !tb);
        const Tensor db = tb ? detail::matmul(dy2, a2, true, false) : detail::matmul(a2, dy2, true, false);
        return {da, db};
      }
      // C = op(A) op(B): dA = dC op(B)^T (transposed back if A was), dB likewise.
      const Tensor da = ta ? detail::matmul(b, dy, tb, true) : detail::matmul(dy, b, false, !tb);
      const Tensor db = tb ? detail::matmul(dy, a, true, ta) : detail::matmul(a, dy, !ta, false);
      return {da, db};
    }
    case OpKind::reduce: {
      const Tensor& x = in[0];
      Tensor g = dy;
      Tensor y = out[0];
      if (!at.keepdims) {
        // Put the reduced dimensions back as 1s so that the gradient broadcasts against x.
        std::vector<std::int64_t> dims;
        bool reduced[kMaxRank] = {};
        for (auto ax : at.axes) reduced[ax] = true;
        for (int i = 0; i < x.rank(); ++i) dims.push_back(reduced[i] ? 1 : (x.shape()[i] < 0 ? -1 : x.shape()[i]));
        g = ops::reshape(dy, dims);
        y = ops::reshape(out[0], dims);
      }
      switch (at.reduce) {
        case ReduceOp::sum: return {detail::broadcast_like(g, x)};
        case ReduceOp::mean: return {detail::broadcast_like(g, x, true)};
        case ReduceOp::max:
        case ReduceOp::min: {
          // Tied extremes share the gradient evenly, as TensorFlow, JAX and torch.amax split it.
          const Tensor chosen = ops::equal(x, y);
          std::vector<int> axes;
          for (auto ax : at.axes) axes.push_back(int(ax));
          const Tensor ties = ops::sum(chosen, axes, true);
          return {ops::multiply(detail::broadcast_like(ops::divide(g, ties), x), chosen)};
        }
      }
      break;
    }
    case OpKind::softmax: {
      NodeAttrs a;
      a.axis = at.axis;
      a.log = at.log;
      return {make(OpKind::softmax_backward, std::move(a), {out[0], dy})};
    }
    case OpKind::sum_to: return {detail::broadcast_like(dy, in[0], at.mean), Tensor()};
    case OpKind::broadcast_like: return {detail::sum_to(dy, in[0], at.mean), Tensor()};
    case OpKind::reshape: {
      std::vector<std::int64_t> dims;
      for (auto d : in[0].shape()) dims.push_back(d < 0 ? -1 : d);
      // Back to the input's shape, its unknown dimensions taken from the input itself.
      std::vector<Tensor> grads{ops::reshape_like(dy, dims, in[0])};
      if (in.size() > 1) grads.emplace_back();
      return grads;
    }
    case OpKind::transpose: {
      std::vector<int> inverse(std::size_t(at.target.rank()));
      for (int i = 0; i < at.target.rank(); ++i) inverse[std::size_t(at.target[i])] = i;
      return {ops::transpose(dy, inverse)};
    }
    case OpKind::slice: {
      NodeAttrs a = at;
      return {make(OpKind::slice_backward, std::move(a), {dy, in[0]})};
    }
    case OpKind::pad: {
      // An unknown dimension is dy's less what was padded after it.
      std::vector<std::int64_t> begin(at.begin.begin(), at.begin.end()), size;
      for (int i = 0; i < in[0].rank(); ++i) size.push_back(in[0].shape()[i] < 0 ? -1 - at.size[i] : in[0].shape()[i]);
      return {ops::slice(dy, begin, size)};
    }
    case OpKind::concat: {
      std::vector<Tensor> grads;
      std::int64_t offset = 0;
      for (const Tensor& x : in) {
        std::vector<std::int64_t> begin(std::size_t(x.rank()), 0), size(std::size_t(x.rank()), -1);
        begin[std::size_t(at.axis)] = offset;
        size[std::size_t(at.axis)] = x.shape()[at.axis];
        if (x.shape()[at.axis] < 0)
          throw std::invalid_argument("concatenate: cannot differentiate along an unknown dimension");
        offset += x.shape()[at.axis];
        grads.push_back(ops::slice(dy, begin, size));
      }
      return grads;
    }
    case OpKind::gather: {
      NodeAttrs a;
      a.axis = at.axis;
      a.batch_dims = at.batch_dims;
      return {make(OpKind::scatter_add, std::move(a), {dy, in[1], in[0]}), Tensor()};
    }
    case OpKind::cast:
      return {is_floating(in[0].dtype()) ? ops::cast(dy, in[0].dtype()) : Tensor()};
    case OpKind::conv2d: {
      NodeAttrs a;
      a.window = at.window;
      a.same_padding_at_plan = at.same_padding_at_plan;
      const Tensor dx = make(OpKind::conv2d_backward_data, a, {dy, in[1], in[0]});
      const Tensor dk = make(OpKind::conv2d_backward_filter, a, {in[0], dy, in[1]});
      return {dx, dk};
    }
    case OpKind::conv2d_transpose: {
      // conv2d_transpose(x, k) is conv2d's data gradient with x as dy: its own gradients are conv2d's forward and
      // filter gradient with the roles of input and output exchanged.
      NodeAttrs a;
      a.window = at.window;
      const Tensor dx = make(OpKind::conv2d, a, {dy, in[1]});
      const Tensor dk = make(OpKind::conv2d_backward_filter, a, {dy, in[0], in[1]});
      return {dx, dk};
    }
    case OpKind::pool2d: {
      NodeAttrs a;
      a.pool = at.pool;
      a.window = at.window;
      a.same_padding_at_plan = at.same_padding_at_plan;
      return {make(OpKind::pool2d_backward, std::move(a), {in[0], out[0], dy})};
    }
    case OpKind::in_train_phase:
      // Gradients exist only in training, where the first branch is the one computed.
      return {dy, Tensor()};
    case OpKind::split: {
      NodeAttrs a;
      a.axis = at.axis;
      std::vector<ValueId> pieces;
      for (const Tensor& d : dout) pieces.push_back(d.id());
      return {Tensor(dy.graph_ptr(), dy.graph().add_node(OpKind::concat, std::move(a), pieces))};
    }
    case OpKind::rnn_cell: {
      auto cell = [&](RnnCellOp op, std::vector<ValueId> operands) {
        NodeAttrs a;
        a.cell = op;
        return Tensor(dy.graph_ptr(), dy.graph().add_node(OpKind::rnn_cell, std::move(a), std::move(operands)));
      };
      if (at.cell == RnnCellOp::lstm) {
        const ValueId z = in[0].id(), c_prev = in[1].id(), c = out[1].id(), dh = dout[0].id(), dc = dout[1].id();
        return {cell(RnnCellOp::lstm_grad_z, {z, c_prev, c, dh, dc}), cell(RnnCellOp::lstm_grad_c, {z, c, dh, dc})};
      }
      if (at.cell == RnnCellOp::gru) {
        const std::vector<ValueId> operands = {in[0].id(), in[1].id(), in[2].id(), dy.id()};
        return {cell(RnnCellOp::gru_grad_x, operands), cell(RnnCellOp::gru_grad_r, operands), cell(RnnCellOp::gru_grad_h, operands)};
      }
      break;  // the gradient kernels themselves
    }
    case OpKind::unary_backward:
    case OpKind::softmax_backward:
    case OpKind::slice_backward:
    case OpKind::scatter_add:
    case OpKind::conv2d_backward_data:
    case OpKind::conv2d_backward_filter:
    case OpKind::pool2d_backward:
    case OpKind::deferred:
      break;
  }
  throw std::invalid_argument(fmt::format("{}{}: has no gradient rule (second derivatives are not supported)",
                                          node.scope.empty() ? "" : node.scope + ": ", op_kind_name(node.kind)));
}

}  // namespace

std::vector<Tensor> gradients(const Tensor& loss, const std::vector<Tensor>& wrt) {
  Graph& g = loss.graph();
  const auto& gp = loss.graph_ptr();
  const int n_values = g.num_values();

  // Values the loss depends on, and values that depend on something in wrt: only their intersection needs
  // a gradient.
  std::vector<char> reaches_loss(std::size_t(n_values), 0), from_wrt(std::size_t(n_values), 0);
  reaches_loss[std::size_t(loss.id())] = 1;
  const int last_node = g.value(loss.id()).producer;
  for (int ni = last_node; ni >= 0; --ni) {
    const Node& node = g.node(ni);
    bool any = false;
    for (ValueId o : node.outputs) any = any || reaches_loss[std::size_t(o)];
    if (!any) continue;
    for (std::size_t k = 0; k < node.inputs.size(); ++k)
      if (!is_shape_only_input(node.kind, int(k))) reaches_loss[std::size_t(node.inputs[k])] = 1;
  }
  for (const Tensor& w : wrt) {
    if (w.graph_ptr() != gp) throw std::invalid_argument("gradients: a tensor comes from another graph than the loss");
    from_wrt[std::size_t(w.id())] = 1;
  }
  for (int ni = 0; ni <= last_node; ++ni) {
    const Node& node = g.node(ni);
    bool any = false;
    for (std::size_t k = 0; k < node.inputs.size(); ++k)
      if (!is_shape_only_input(node.kind, int(k))) any = any || from_wrt[std::size_t(node.inputs[k])];
    if (any && node.kind != OpKind::stop_gradient)
      for (ValueId o : node.outputs) from_wrt[std::size_t(o)] = 1;
  }

  std::vector<Tensor> grad(static_cast<std::size_t>(n_values));
  auto accumulate = [&](ValueId v, const Tensor& t) {
    auto& slot = grad[std::size_t(v)];
    slot = slot.valid() ? ops::add(slot, t) : t;
  };
  accumulate(loss.id(), detail::broadcast_like(ops::constant(1.f, loss), loss));

  for (int ni = last_node; ni >= 0; --ni) {
    // Copy: appending nodes below may reallocate the node list.
    const Node node = g.node(ni);
    bool needed = false;
    std::vector<Tensor> outs, douts;
    for (ValueId o : node.outputs) {
      needed = needed || (grad[std::size_t(o)].valid() && from_wrt[std::size_t(o)]);
      outs.emplace_back(gp, o);
      douts.push_back(grad[std::size_t(o)]);
    }
    if (!needed || node.inputs.empty()) continue;
    bool input_needs_grad = false;
    for (std::size_t k = 0; k < node.inputs.size(); ++k)
      input_needs_grad = input_needs_grad || (from_wrt[std::size_t(node.inputs[k])] && !is_shape_only_input(node.kind, int(k)));
    if (!input_needs_grad) continue;
    for (std::size_t k = 0; k < douts.size(); ++k)
      if (!douts[k].valid()) douts[k] = detail::broadcast_like(ops::constant(0.f, outs[k]), outs[k]);
    std::vector<Tensor> ins;
    for (ValueId v : node.inputs) ins.emplace_back(gp, v);
    std::vector<Tensor> dins;
    {
      NameScope scope(g, node.scope.empty() ? std::string("gradient") : node.scope);
      dins = rule(node, ins, outs, douts);
    }
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      const ValueId v = node.inputs[k];
      if (dins[k].valid() && from_wrt[std::size_t(v)] && reaches_loss[std::size_t(v)]) accumulate(v, dins[k]);
    }
  }

  std::vector<Tensor> result;
  for (const Tensor& w : wrt) result.push_back(grad[std::size_t(w.id())]);
  return result;
}

}  // namespace strata
