#include "api/targets.h"

#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "graph/ops.h"

namespace strata::targets {

Tensor as_float(const Tensor& t) { return t.dtype() == DType::float32 ? t : ops::cast(t, DType::float32); }

Tensor class_indices(const Tensor& y_true, const Tensor& y_pred, const std::string& what) {
  Tensor labels = y_true;
  if (labels.rank() == y_pred.rank() && labels.shape()[labels.rank() - 1] == 1) labels = ops::squeeze(labels, -1);
  if (labels.rank() != y_pred.rank() - 1)
    throw std::invalid_argument(fmt::format("{}: labels of shape {} do not match predictions of shape {} "
                                            "(expected one class index per sample)",
                                            what, y_true.shape().to_string(), y_pred.shape().to_string()));
  return labels.dtype() == DType::int32 ? labels : ops::cast(labels, DType::int32);
}

Tensor weights_like(const Tensor& sample_weight, const Tensor& values) {
  if (values.rank() <= 1) return sample_weight;
  std::vector<std::int64_t> shape{-1};
  for (int i = 1; i < values.rank(); ++i) shape.push_back(1);
  return ops::reshape(sample_weight, shape);
}

}  // namespace strata::targets
