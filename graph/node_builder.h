// Appending raw nodes to a graph: shared by the ops namespace and the gradient rules.
#pragma once

#include <vector>

#include "graph/graph.h"

namespace strata::detail {

// Appends `kind` with `attrs` over `inputs` (all of one graph) and returns its first output.
Tensor make(OpKind kind, NodeAttrs attrs, const std::vector<Tensor>& inputs);
// The other outputs of a multi-output node.
Tensor output_of(const Tensor& first, int index);

Tensor unary(UnaryOp op, const Tensor& x, float alpha = 0.f);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);
// Sums (or averages) `grad` over the dimensions along which `like` was broadcast, giving `like`'s shape.
Tensor sum_to(const Tensor& grad, const Tensor& like, bool mean = false);
// Broadcasts `x` to `like`'s shape; `mean` also divides by the number of copies each element gets.
Tensor broadcast_like(const Tensor& x, const Tensor& like, bool mean = false);
Tensor reduce(ReduceOp op, const Tensor& x, const std::vector<int>& axes, bool keepdims);

}  // namespace strata::detail
