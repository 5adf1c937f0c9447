// keras.ops.einsum for two operands, composed from the engine's primitives (transpose, reshape, a batched
// matmul, sums), so its gradient comes from their rules and every backend runs it.
#pragma once

#include <string>

#include "graph/ops.h"

namespace strata::ops {

// Contracts `a` and `b` as numpy.einsum(equation, a, b): "abc,cd->abd", with "..." standing for the
// leading (or trailing, where it is written last) dimensions an operand has beyond its letters; without
// "->", the output is the ellipsis then the letters used once, in alphabetical order. Letters only in one
// operand and not in the output are summed over first. A letter repeated within one operand (a diagonal),
// sizes that differ for one letter, and more than one dimension of unknown size are errors naming the
// equation and shapes.
Tensor einsum(const std::string& equation, const Tensor& a, const Tensor& b);

}  // namespace strata::ops
