// Reverse-mode differentiation: appends the backward graph built from per-primitive gradient rules.
#pragma once

#include <vector>

#include "graph/graph.h"

namespace strata {

// d(sum of loss) / d(each of wrt), appended to loss's graph. A tensor the loss does not depend on gets an
// invalid (empty) Tensor.
std::vector<Tensor> gradients(const Tensor& loss, const std::vector<Tensor>& wrt);

}  // namespace strata
