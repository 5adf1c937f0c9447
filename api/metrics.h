// Metrics with Keras's names and formulas. A metric traces per-batch sufficient statistics (sums) into
// the evaluation graph; the host adds them up over the batches of an epoch and computes the result, so
// a result over an epoch is exact however the data is batched.
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/variable.h"

namespace strata {

using Json = nlohmann::json;

class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  virtual std::string class_name() const = 0;
  // Statistics of one batch; sample_weight has shape (batch,).
  virtual std::vector<Tensor> statistics(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const = 0;
  // The result from the statistics summed over batches (one vector per statistic).
  virtual double result(std::span<const std::vector<double>> totals) const = 0;

 private:
  std::string name_;
};

namespace metrics {

// The weighted mean of a per-sample value: statistics sum(value * w) and sum(w). The weights are per
// sample (batch,), or per value when shaped like the values (a masked sequence output's steps).
class MeanMetric : public Metric {
 public:
  using Metric::Metric;
  std::vector<Tensor> statistics(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const override;
  double result(std::span<const std::vector<double>> totals) const override;

 protected:
  // The value per sample (and timestep): y_pred's shape without its last axis, or y_pred's shape.
  virtual Tensor values(const Tensor& y_true, const Tensor& y_pred) const = 0;
};

#define STRATA_MEAN_METRIC(Class, default_name)                                \
  class Class : public MeanMetric {                                          \
   public:                                                                   \
    explicit Class(std::string name = default_name) : MeanMetric(std::move(name)) {} \
    std::string class_name() const override { return #Class; }               \
   protected:                                                                \
    Tensor values(const Tensor& y_true, const Tensor& y_pred) const override; \
  };
STRATA_MEAN_METRIC(SparseCategoricalAccuracy, "sparse_categorical_accuracy")
STRATA_MEAN_METRIC(CategoricalAccuracy, "categorical_accuracy")
STRATA_MEAN_METRIC(MeanSquaredError, "mean_squared_error")
STRATA_MEAN_METRIC(MeanAbsoluteError, "mean_absolute_error")
#undef STRATA_MEAN_METRIC

class BinaryAccuracy : public MeanMetric {
 public:
  explicit BinaryAccuracy(std::string name = "binary_accuracy", float threshold = 0.5f)
      : MeanMetric(std::move(name)), threshold_(threshold) {}
  std::string class_name() const override { return "BinaryAccuracy"; }
 protected:
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
 private:
  float threshold_;
};

// Whether the true class is among the k highest scores (TopKCategoricalAccuracy takes one-hot labels).
class TopKCategoricalAccuracy : public MeanMetric {
 public:
  explicit TopKCategoricalAccuracy(int k = 5, std::string name = "top_k_categorical_accuracy", bool sparse = false)
      : MeanMetric(std::move(name)), k_(k), sparse_(sparse) {}
  std::string class_name() const override { return sparse_ ? "SparseTopKCategoricalAccuracy" : "TopKCategoricalAccuracy"; }
 protected:
  Tensor values(const Tensor& y_true, const Tensor& y_pred) const override;
 private:
  int k_;
  bool sparse_;
};

// sqrt of the weighted mean squared error.
class RootMeanSquaredError : public MeanSquaredError {
 public:
  explicit RootMeanSquaredError(std::string name = "root_mean_squared_error") : MeanSquaredError(std::move(name)) {}
  std::string class_name() const override { return "RootMeanSquaredError"; }
  double result(std::span<const std::vector<double>> totals) const override;
};

// Confusion counts at thresholds: every element of y_pred is a separate prediction against y_true.
// Statistics: true positives, false positives, true negatives, false negatives, one per threshold.
class ConfusionMetric : public Metric {
 public:
  ConfusionMetric(std::string name, std::vector<float> thresholds);
  std::vector<Tensor> statistics(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight) const override;
  std::size_t num_thresholds() const { return thresholds_.size(); }

 private:
  std::vector<float> thresholds_;
  VariablePtr threshold_values_;
};

class Precision : public ConfusionMetric {
 public:
  explicit Precision(float threshold = 0.5f, std::string name = "precision") : ConfusionMetric(std::move(name), {threshold}) {}
  std::string class_name() const override { return "Precision"; }
  double result(std::span<const std::vector<double>> totals) const override;
};

class Recall : public ConfusionMetric {
 public:
  explicit Recall(float threshold = 0.5f, std::string name = "recall") : ConfusionMetric(std::move(name), {threshold}) {}
  std::string class_name() const override { return "Recall"; }
  double result(std::span<const std::vector<double>> totals) const override;
};

// Area under the ROC curve by Keras's method: num_thresholds thresholds evenly spaced in [0, 1] (the end
// ones nudged by epsilon) and trapezoidal summation.
class AUC : public ConfusionMetric {
 public:
  explicit AUC(int num_thresholds = 200, std::string name = "auc");
  std::string class_name() const override { return "AUC"; }
  double result(std::span<const std::vector<double>> totals) const override;
};

}  // namespace metrics

// A metric by Keras name ("accuracy", "mae", "auc", ...) or serialization. "accuracy"/"acc" cannot be
// resolved without the loss and shapes; the model resolves it (see resolve_accuracy).
std::shared_ptr<Metric> get_metric(const Json& identifier);
// The accuracy Keras picks for "accuracy": binary for a binary crossentropy or a single output unit,
// sparse categorical for integer labels, categorical otherwise.
std::shared_ptr<Metric> resolve_accuracy(const std::string& name, bool binary_loss, bool sparse_labels, const Shape& y_pred);

class MetricRef {
 public:
  MetricRef(const char* name) : name_(name) {}         // NOLINT: implicit on purpose
  MetricRef(std::string name) : name_(std::move(name)) {}  // NOLINT
  MetricRef(std::shared_ptr<Metric> m) : metric_(std::move(m)) {}  // NOLINT
  template <class M>
    requires std::derived_from<M, Metric>
  MetricRef(M m) : metric_(std::make_shared<M>(std::move(m))) {}  // NOLINT
  // The metric object, or empty with name() set for a metric resolved by the model ("accuracy").
  const std::shared_ptr<Metric>& metric() const { return metric_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<Metric> metric_;
};

}  // namespace strata
