#include "api/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "api/losses.h"
#include "api/targets.h"
#include "graph/ops.h"
#include "io/keras_object.h"

namespace strata {

namespace {

using targets::as_float;
using targets::weights_like;

double divide_no_nan(double a, double b) { return b == 0 ? 0.0 : a / b; }

}  // namespace

namespace metrics {

std::vector<Tensor> MeanMetric::statistics(const Tensor& y_true, const Tensor& y_pred, const Tensor& w) const {
  NameScope scope(y_pred.graph(), name());
  const Tensor v = values(y_true, y_pred);
  if (v.rank() > 1 && w.rank() == v.rank()) return {ops::sum(ops::multiply(v, w)), ops::sum(w)};
  std::int64_t per_sample = 1;
  for (int i = 1; i < v.rank(); ++i) per_sample *= v.shape()[i];
  const Tensor weighted = ops::sum(ops::multiply(v, weights_like(w, v)));
  Tensor count = ops::sum(w);
  if (per_sample != 1) count = ops::multiply(count, float(per_sample));
  return {weighted, count};
}

double MeanMetric::result(std::span<const std::vector<double>> t) const { return divide_no_nan(t[0][0], t[1][0]); }

Tensor SparseCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor labels = as_float(targets::class_indices(y_true, y_pred, name()));
  return ops::equal(ops::cast(ops::argmax(y_pred, -1), DType::float32), labels);
}

Tensor CategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  return ops::equal(ops::cast(ops::argmax(y_pred, -1), DType::float32), ops::cast(ops::argmax(as_float(y_true), -1), DType::float32));
}

// As in Keras, these metrics average the per-sample values of the losses of the same name.
Tensor MeanSquaredError::values(const Tensor& y_true, const Tensor& y_pred) const {
  return losses::MeanSquaredError().per_sample(y_true, y_pred);
}

Tensor MeanAbsoluteError::values(const Tensor& y_true, const Tensor& y_pred) const {
  return losses::MeanAbsoluteError().per_sample(y_true, y_pred);
}

Tensor BinaryAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  return ops::mean(ops::equal(ops::greater(y_pred, threshold_), as_float(y_true)), {-1});
}

Tensor TopKCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor labels = sparse_ ? targets::class_indices(y_true, y_pred, name()) : ops::argmax(as_float(y_true), -1);
  const int axis = y_pred.rank() - 1;
  const Tensor true_score = ops::expand_dims(ops::gather(y_pred, labels, axis, axis), -1);
  // In the top k when fewer than k scores beat the true class's.
  const Tensor better = ops::sum(ops::greater(y_pred, true_score), {-1});
  return ops::less(better, float(k_));
}

double RootMeanSquaredError::result(std::span<const std::vector<double>> t) const {
  return std::sqrt(MeanSquaredError::result(t));
}

ConfusionMetric::ConfusionMetric(std::string name, std::vector<float> thresholds)
    : Metric(std::move(name)), thresholds_(std::move(thresholds)) {
  threshold_values_ = std::make_shared<Variable>(this->name() + "/thresholds", Shape{std::int64_t(thresholds_.size())},
                                                 DType::float32, false);
  threshold_values_->assign(thresholds_);
}

std::vector<Tensor> ConfusionMetric::statistics(const Tensor& y_true, const Tensor& y_pred, const Tensor& w) const {
  NameScope scope(y_pred.graph(), name());
  const Tensor pred = ops::reshape(y_pred, {-1, 1});
  const Tensor label = ops::reshape(as_float(y_true), {-1, 1});
  if (y_true.shape().rank() != y_pred.shape().rank())
    throw std::invalid_argument(fmt::format("{}: targets of shape {} do not match predictions of shape {}", name(),
                                            y_true.shape().to_string(), y_pred.shape().to_string()));
  // Each element carries its sample's weight.
  const Tensor weight = ops::reshape(ops::add(ops::multiply(y_pred, 0.f), weights_like(w, y_pred)), {-1, 1});
  const Tensor positive = ops::greater(pred, threshold_values_);  // (elements, thresholds)
  const Tensor negative = ops::subtract(1.f, positive);
  const Tensor wl = ops::multiply(label, weight), wn = ops::multiply(ops::subtract(1.f, label), weight);
  return {ops::sum(ops::multiply(positive, wl), {0}), ops::sum(ops::multiply(positive, wn), {0}),
          ops::sum(ops::multiply(negative, wn), {0}), ops::sum(ops::multiply(negative, wl), {0})};
}

double Precision::result(std::span<const std::vector<double>> t) const { return divide_no_nan(t[0][0], t[0][0] + t[1][0]); }
double Recall::result(std::span<const std::vector<double>> t) const { return divide_no_nan(t[0][0], t[0][0] + t[3][0]); }

namespace {
std::vector<float> auc_thresholds(int n) {
  if (n < 2) throw std::invalid_argument(fmt::format("AUC: num_thresholds must be > 1, got {}", n));
  std::vector<float> t(static_cast<std::size_t>(n));
  for (int i = 1; i < n - 1; ++i) t[std::size_t(i)] = float(double(i) / double(n - 1));
  t.front() = -1e-7f;
  t.back() = 1.f + 1e-7f;
  return t;
}
}  // namespace

AUC::AUC(int num_thresholds, std::string name) : ConfusionMetric(std::move(name), auc_thresholds(num_thresholds)) {}

double AUC::result(std::span<const std::vector<double>> t) const {
  const std::size_t n = num_thresholds();
  double area = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const double tpr0 = divide_no_nan(t[0][i], t[0][i] + t[3][i]), tpr1 = divide_no_nan(t[0][i + 1], t[0][i + 1] + t[3][i + 1]);
    const double fpr0 = divide_no_nan(t[1][i], t[1][i] + t[2][i]), fpr1 = divide_no_nan(t[1][i + 1], t[1][i + 1] + t[2][i + 1]);
    area += (fpr0 - fpr1) * (tpr0 + tpr1) / 2;
  }
  return area;
}

}  // namespace metrics

std::shared_ptr<Metric> get_metric(const Json& identifier) {
  const io::KerasObject parsed = io::parse_keras_object(identifier, "metric");
  const std::string& name = parsed.name;
  const Json& c = parsed.config;
  const bool by_name = parsed.by_name;
  auto named = [&](const std::string& fallback) { return c.contains("name") && c.at("name").is_string() ? c.at("name").get<std::string>() : fallback; };
  // String identifiers keep the spelling the user gave as their log name, as Keras does.
  const std::string log_name = by_name ? name : "";
  using namespace metrics;
  if (name == "sparse_categorical_accuracy" || name == "SparseCategoricalAccuracy")
    return std::make_shared<SparseCategoricalAccuracy>(named(log_name.empty() ? "sparse_categorical_accuracy" : log_name));
  if (name == "categorical_accuracy" || name == "CategoricalAccuracy")
    return std::make_shared<CategoricalAccuracy>(named(log_name.empty() ? "categorical_accuracy" : log_name));
  if (name == "binary_accuracy" || name == "BinaryAccuracy")
    return std::make_shared<BinaryAccuracy>(named(log_name.empty() ? "binary_accuracy" : log_name), c.value("threshold", 0.5f));
  if (name == "top_k_categorical_accuracy" || name == "TopKCategoricalAccuracy")
    return std::make_shared<TopKCategoricalAccuracy>(c.value("k", 5), named(log_name.empty() ? "top_k_categorical_accuracy" : log_name));
  if (name == "sparse_top_k_categorical_accuracy" || name == "SparseTopKCategoricalAccuracy")
    return std::make_shared<TopKCategoricalAccuracy>(c.value("k", 5), named(log_name.empty() ? "sparse_top_k_categorical_accuracy" : log_name), true);
  if (name == "mse" || name == "mean_squared_error" || name == "MeanSquaredError")
    return std::make_shared<metrics::MeanSquaredError>(named(log_name.empty() ? "mean_squared_error" : log_name));
  if (name == "mae" || name == "mean_absolute_error" || name == "MeanAbsoluteError")
    return std::make_shared<metrics::MeanAbsoluteError>(named(log_name.empty() ? "mean_absolute_error" : log_name));
  if (name == "rmse" || name == "root_mean_squared_error" || name == "RootMeanSquaredError")
    return std::make_shared<RootMeanSquaredError>(named(log_name.empty() ? "root_mean_squared_error" : log_name));
  if (name == "auc" || name == "AUC") {
    if (c.contains("curve") && c.at("curve") != "ROC") throw std::invalid_argument("AUC: only curve ROC is supported");
    return std::make_shared<AUC>(c.value("num_thresholds", 200), named("auc"));
  }
  if (name == "precision" || name == "Precision") return std::make_shared<Precision>(0.5f, named("precision"));
  if (name == "recall" || name == "Recall") return std::make_shared<Recall>(0.5f, named("recall"));
  throw std::invalid_argument(fmt::format(
      "unknown metric '{}' (known: accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, "
      "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mse, mae, rmse, auc, precision, recall)", name));
}

std::shared_ptr<Metric> resolve_accuracy(const std::string& name, bool binary_loss, bool sparse, const Shape& y_pred) {
  using namespace metrics;
  if (binary_loss || (y_pred.rank() > 0 && y_pred[y_pred.rank() - 1] == 1)) return std::make_shared<BinaryAccuracy>(name);
  if (sparse) return std::make_shared<SparseCategoricalAccuracy>(name);
  return std::make_shared<CategoricalAccuracy>(name);
}

}  // namespace strata
