// Helpers that losses and metrics share for reading targets and sample weights.
#pragma once

#include <string>

#include "graph/graph.h"

namespace strata::targets {

// `t` as float32 (integer labels, say), cast only when needed.
Tensor as_float(const Tensor& t);
// Class indices shaped like y_pred without its last axis, as int32; labels (batch, 1) are squeezed, as
// Keras does. A shape that cannot be class indices throws, prefixed by `what`.
Tensor class_indices(const Tensor& y_true, const Tensor& y_pred, const std::string& what);
// Sample weights (batch,) reshaped to broadcast against `values` (batch, ...).
Tensor weights_like(const Tensor& sample_weight, const Tensor& values);

}  // namespace strata::targets
