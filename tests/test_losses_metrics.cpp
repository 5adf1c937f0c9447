// Losses and metrics against references computed here in double.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "api/strata.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata {
namespace {

constexpr int kBatch = 6, kClasses = 4;

struct Data {
  std::vector<float> probs, logits, onehot, binary_targets, regression_targets, weights;
  std::vector<std::int32_t> labels;
  Data() {
    logits = test::random_vector(kBatch * kClasses, -3.f, 3.f, 31);
    probs.resize(logits.size());
    for (int r = 0; r < kBatch; ++r) {
      double z = 0;
      for (int c = 0; c < kClasses; ++c) z += std::exp(logits[std::size_t(r * kClasses + c)]);
      for (int c = 0; c < kClasses; ++c) probs[std::size_t(r * kClasses + c)] = float(std::exp(logits[std::size_t(r * kClasses + c)]) / z);
    }
    labels = {0, 3, 1, 1, 2, 3};
    onehot.assign(std::size_t(kBatch * kClasses), 0.f);
    for (int r = 0; r < kBatch; ++r) onehot[std::size_t(r * kClasses + labels[std::size_t(r)])] = 1.f;
    binary_targets = test::random_vector(kBatch * kClasses, 0.f, 1.f, 32);
    for (auto& t : binary_targets) t = t > 0.5f ? 1.f : 0.f;
    regression_targets = test::random_vector(kBatch * kClasses, -2.f, 2.f, 33);
    weights = {1.f, 0.5f, 2.f, 0.f, 1.f, 1.5f};
  }
};

// Evaluates loss(y_true, f(y_pred)) with sample weights; `through` applies an op to the fed predictions
// (softmax or sigmoid, to exercise the fused paths).
double run_loss(const Loss& loss, const std::vector<float>& y_pred, const void* y_true, DType true_dtype, Shape true_shape,
                const std::vector<float>& weights, const std::function<Tensor(const Tensor&)>& through = nullptr) {
  clear_session();
  Shape sym_true = true_shape;
  sym_true[0] = -1;
  const Tensor pred_in = ops::placeholder({-1, kClasses});
  const Tensor pred = through ? through(pred_in) : pred_in;
  const Tensor truth = ops::placeholder(sym_true, true_dtype, "y");
  const Tensor w = ops::placeholder({-1}, DType::float32, "w");
  const Tensor l = loss(truth, pred, w);
  Program p({pred_in, truth, w}, {l});
  const TensorView feeds[] = {{const_cast<float*>(y_pred.data()), DType::float32, {kBatch, kClasses}},
                              {const_cast<void*>(y_true), true_dtype, true_shape},
                              {const_cast<float*>(weights.data()), DType::float32, {kBatch}}};
  p.run(Mode::inference, feeds);
  return p.read_scalar(0);
}

// Keras's sum_over_batch_size of per-sample values.
double reduce(const std::vector<double>& per_sample, const std::vector<float>& w) {
  double s = 0;
  for (std::size_t i = 0; i < per_sample.size(); ++i) s += per_sample[i] * w[i];
  return s / double(per_sample.size());
}

TEST(Losses, RegressionLosses) {
  Data d;
  std::vector<double> mse(kBatch), mae(kBatch), huber(kBatch);
  for (int r = 0; r < kBatch; ++r)
    for (int c = 0; c < kClasses; ++c) {
      const double e = double(d.probs[std::size_t(r * kClasses + c)]) - d.regression_targets[std::size_t(r * kClasses + c)];
      mse[std::size_t(r)] += e * e / kClasses;
      mae[std::size_t(r)] += std::abs(e) / kClasses;
      const double delta = 0.7;
      huber[std::size_t(r)] += (std::abs(e) <= delta ? 0.5 * e * e : delta * std::abs(e) - 0.5 * delta * delta) / kClasses;
    }
  const Shape s{kBatch, kClasses};
  EXPECT_NEAR(run_loss(losses::MeanSquaredError(), d.probs, d.regression_targets.data(), DType::float32, s, d.weights), reduce(mse, d.weights), 1e-5);
  EXPECT_NEAR(run_loss(losses::MeanAbsoluteError(), d.probs, d.regression_targets.data(), DType::float32, s, d.weights), reduce(mae, d.weights), 1e-5);
  EXPECT_NEAR(run_loss(losses::Huber(0.7f), d.probs, d.regression_targets.data(), DType::float32, s, d.weights), reduce(huber, d.weights), 1e-5);
}

TEST(Losses, CrossentropiesPlainFusedAndFromLogits) {
  Data d;
  for (const float ls : {0.f, 0.2f}) {
    std::vector<double> cce(kBatch), bce(kBatch);
    for (int r = 0; r < kBatch; ++r)
      for (int c = 0; c < kClasses; ++c) {
        const std::size_t i = std::size_t(r * kClasses + c);
        const double t = d.onehot[i] * (1 - ls) + ls / kClasses;
        cce[std::size_t(r)] -= t * std::log(double(d.probs[i]));
        const double bt = d.binary_targets[i] * (1 - ls) + 0.5 * ls;
        const double p = 1 / (1 + std::exp(-double(d.logits[i])));
        bce[std::size_t(r)] -= (bt * std::log(p) + (1 - bt) * std::log(1 - p)) / kClasses;
      }
    const Shape s{kBatch, kClasses};
    const CrossentropyOptions plain{.label_smoothing = ls}, logits{.from_logits = true, .label_smoothing = ls};
    auto softmax = [](const Tensor& t) { return ops::softmax(t); };
    auto sigmoid = [](const Tensor& t) { return ops::sigmoid(t); };
    const double want_cce = reduce(cce, d.weights), want_bce = reduce(bce, d.weights);
    EXPECT_NEAR(run_loss(losses::CategoricalCrossentropy(plain), d.probs, d.onehot.data(), DType::float32, s, d.weights), want_cce, 1e-5);
    EXPECT_NEAR(run_loss(losses::CategoricalCrossentropy(plain), d.logits, d.onehot.data(), DType::float32, s, d.weights, softmax), want_cce, 1e-5);
    EXPECT_NEAR(run_loss(losses::CategoricalCrossentropy(logits), d.logits, d.onehot.data(), DType::float32, s, d.weights), want_cce, 1e-5);
    EXPECT_NEAR(run_loss(losses::BinaryCrossentropy(logits), d.logits, d.binary_targets.data(), DType::float32, s, d.weights), want_bce, 1e-5);
    EXPECT_NEAR(run_loss(losses::BinaryCrossentropy(plain), d.logits, d.binary_targets.data(), DType::float32, s, d.weights, sigmoid), want_bce, 1e-5);
    std::vector<float> p_sigmoid(d.logits.size());
    for (std::size_t i = 0; i < p_sigmoid.size(); ++i) p_sigmoid[i] = float(1 / (1 + std::exp(-double(d.logits[i]))));
    EXPECT_NEAR(run_loss(losses::BinaryCrossentropy(plain), p_sigmoid, d.binary_targets.data(), DType::float32, s, d.weights), want_bce, 1e-4);
    const double want_sparse = want_cce;
    EXPECT_NEAR(run_loss(losses::SparseCategoricalCrossentropy(plain), d.probs, d.labels.data(), DType::int32, {kBatch}, d.weights), want_sparse, 1e-5);
    EXPECT_NEAR(run_loss(losses::SparseCategoricalCrossentropy(logits), d.logits, d.labels.data(), DType::int32, {kBatch, 1}, d.weights), want_sparse, 1e-5);
  }
}

TEST(Losses, ProbabilitiesAreClippedAsKerasDoes) {
  // A zero probability for the true class costs -log(1e-7), not infinity.
  std::vector<float> probs(kBatch * kClasses, 0.f);
  std::vector<std::int32_t> labels(kBatch, 1);
  for (int r = 0; r < kBatch; ++r) probs[std::size_t(r * kClasses)] = 1.f;
  const std::vector<float> ones(kBatch, 1.f);
  EXPECT_NEAR(run_loss(losses::SparseCategoricalCrossentropy(), probs, labels.data(), DType::int32, {kBatch}, ones), -std::log(1e-7), 1e-3);
}

TEST(Losses, SparseCrossentropyIgnoreClass) {
  // Keras's ignore_class: the ignored entries (label 255 here, outside the classes) add nothing and the mean
  // runs over the others (weighted by the sample weights, counted unweighted).
  Data d;
  std::vector<std::int32_t> labels = d.labels;
  labels[1] = 255;
  labels[4] = 255;
  double sum = 0;
  int kept = 0;
  for (int r = 0; r < kBatch; ++r) {
    if (labels[std::size_t(r)] == 255) continue;
    sum -= std::log(double(d.probs[std::size_t(r * kClasses + labels[std::size_t(r)])])) * d.weights[std::size_t(r)];
    ++kept;
  }
  const losses::SparseCategoricalCrossentropy loss({}, 255), logits({.from_logits = true}, 255);
  EXPECT_NEAR(run_loss(loss, d.probs, labels.data(), DType::int32, {kBatch}, d.weights), sum / kept, 1e-5);
  EXPECT_NEAR(run_loss(logits, d.logits, labels.data(), DType::int32, {kBatch, 1}, d.weights), sum / kept, 1e-5);
  // Every entry ignored: zero, not a division by zero.
  const std::vector<std::int32_t> all_ignored(kBatch, 255);
  EXPECT_EQ(run_loss(loss, d.probs, all_ignored.data(), DType::int32, {kBatch}, d.weights), 0.0);
  // By config, and back.
  const auto configured = get_loss(Json{{"class_name", "SparseCategoricalCrossentropy"}, {"config", {{"ignore_class", 255}}}});
  EXPECT_EQ(configured->get_config()["ignore_class"], 255);
  EXPECT_NEAR(run_loss(*configured, d.probs, labels.data(), DType::int32, {kBatch}, d.weights), sum / kept, 1e-5);
  EXPECT_THROW(get_loss(Json{{"class_name", "SparseCategoricalCrossentropy"}, {"config", {{"ignore_class", "void"}}}}), std::invalid_argument);
}

TEST(Losses, KLDivergence) {
  Data d;
  std::vector<float> t(d.probs.rbegin(), d.probs.rend());
  std::vector<double> kl(kBatch);
  for (int r = 0; r < kBatch; ++r)
    for (int c = 0; c < kClasses; ++c) {
      const std::size_t i = std::size_t(r * kClasses + c);
      kl[std::size_t(r)] += t[i] * std::log(double(t[i]) / d.probs[i]);
    }
  EXPECT_NEAR(run_loss(losses::KLDivergence(), d.probs, t.data(), DType::float32, {kBatch, kClasses}, d.weights), reduce(kl, d.weights), 1e-5);
  EXPECT_EQ(get_loss("kld")->class_name(), "KLDivergence");
  EXPECT_THROW(get_loss("crossentropy"), std::invalid_argument);
}

// Runs a metric's statistics over `batches` splits of the data and returns its result.
double run_metric(const Metric& metric, const std::vector<float>& y_pred, int pred_cols, const void* y_true, DType true_dtype,
                  int true_cols, const std::vector<float>& weights, int batches = 2) {
  clear_session();
  const Tensor pred = ops::placeholder({-1, pred_cols});
  const Tensor truth = true_cols > 0 ? ops::placeholder({-1, true_cols}, true_dtype) : ops::placeholder({-1}, true_dtype);
  const Tensor w = ops::placeholder({-1}, DType::float32, "w");
  const std::vector<Tensor> stats = metric.statistics(truth, pred, w);
  Program p({pred, truth, w}, stats);
  std::vector<std::vector<double>> totals(stats.size());
  const int per = kBatch / batches;
  const std::size_t true_size = dtype_size(true_dtype) * std::size_t(std::max(true_cols, 1));
  for (int b = 0; b < batches; ++b) {
    const std::int64_t n = per;
    std::vector<TensorView> feeds = {
        {const_cast<float*>(y_pred.data()) + b * per * pred_cols, DType::float32, {n, pred_cols}},
        {static_cast<char*>(const_cast<void*>(y_true)) + std::size_t(b * per) * true_size, true_dtype,
         true_cols > 0 ? Shape{n, true_cols} : Shape{n}},
        {const_cast<float*>(weights.data()) + b * per, DType::float32, {n}}};
    p.run(Mode::inference, feeds);
    for (std::size_t s = 0; s < stats.size(); ++s) {
      const auto v = p.read_output(int(s));
      totals[s].resize(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) totals[s][i] += v[i];
    }
  }
  return metric.result(totals);
}

TEST(Metrics, Accuracies) {
  Data d;
  double correct = 0, top2 = 0, wsum = 0;
  for (int r = 0; r < kBatch; ++r) {
    const auto* row = d.probs.data() + r * kClasses;
    const int best = int(std::max_element(row, row + kClasses) - row);
    const int label = d.labels[std::size_t(r)];
    int better = 0;
    for (int c = 0; c < kClasses; ++c) better += row[c] > row[label];
    correct += d.weights[std::size_t(r)] * (best == label);
    top2 += d.weights[std::size_t(r)] * (better < 2);
    wsum += d.weights[std::size_t(r)];
  }
  EXPECT_NEAR(run_metric(metrics::SparseCategoricalAccuracy(), d.probs, kClasses, d.labels.data(), DType::int32, 0, d.weights), correct / wsum, 1e-6);
  EXPECT_NEAR(run_metric(metrics::CategoricalAccuracy(), d.probs, kClasses, d.onehot.data(), DType::float32, kClasses, d.weights), correct / wsum, 1e-6);
  EXPECT_NEAR(run_metric(metrics::TopKCategoricalAccuracy(2, "top2", true), d.probs, kClasses, d.labels.data(), DType::int32, 0, d.weights), top2 / wsum, 1e-6);
  EXPECT_NEAR(run_metric(metrics::TopKCategoricalAccuracy(2), d.probs, kClasses, d.onehot.data(), DType::float32, kClasses, d.weights), top2 / wsum, 1e-6);
  double bin = 0;
  for (int r = 0; r < kBatch; ++r) {
    double row = 0;
    for (int c = 0; c < kClasses; ++c) row += (d.probs[std::size_t(r * kClasses + c)] > 0.5f) == (d.binary_targets[std::size_t(r * kClasses + c)] == 1.f);
    bin += d.weights[std::size_t(r)] * row / kClasses;
  }
  EXPECT_NEAR(run_metric(metrics::BinaryAccuracy(), d.probs, kClasses, d.binary_targets.data(), DType::float32, kClasses, d.weights), bin / wsum, 1e-6);
  EXPECT_EQ(resolve_accuracy("accuracy", false, true, {-1, 10})->class_name(), "SparseCategoricalAccuracy");
  EXPECT_EQ(resolve_accuracy("accuracy", false, false, {-1, 10})->class_name(), "CategoricalAccuracy");
  EXPECT_EQ(resolve_accuracy("accuracy", true, false, {-1, 10})->class_name(), "BinaryAccuracy");
  EXPECT_EQ(resolve_accuracy("accuracy", false, false, {-1, 1})->class_name(), "BinaryAccuracy");
}

TEST(Metrics, Regression) {
  Data d;
  double se = 0, ae = 0, wsum = 0;
  for (int r = 0; r < kBatch; ++r) {
    for (int c = 0; c < kClasses; ++c) {
      const double e = double(d.probs[std::size_t(r * kClasses + c)]) - d.regression_targets[std::size_t(r * kClasses + c)];
      se += d.weights[std::size_t(r)] * e * e / kClasses;
      ae += d.weights[std::size_t(r)] * std::abs(e) / kClasses;
    }
    wsum += d.weights[std::size_t(r)];
  }
  auto run = [&](const Metric& m) { return run_metric(m, d.probs, kClasses, d.regression_targets.data(), DType::float32, kClasses, d.weights); };
  EXPECT_NEAR(run(metrics::MeanSquaredError()), se / wsum, 1e-6);
  EXPECT_NEAR(run(metrics::MeanAbsoluteError()), ae / wsum, 1e-6);
  EXPECT_NEAR(run(metrics::RootMeanSquaredError()), std::sqrt(se / wsum), 1e-6);
}

TEST(Metrics, PrecisionRecallAUC) {
  Data d;
  std::vector<float> ones(kBatch, 1.f);
  double tp = 0, fp = 0, fn = 0;
  for (std::size_t i = 0; i < d.probs.size(); ++i) {
    const bool pos = d.probs[i] > 0.5f, truth = d.binary_targets[i] == 1.f;
    tp += pos && truth;
    fp += pos && !truth;
    fn += !pos && truth;
  }
  auto run = [&](const Metric& m) { return run_metric(m, d.probs, kClasses, d.binary_targets.data(), DType::float32, kClasses, ones); };
  EXPECT_NEAR(run(metrics::Precision()), tp / (tp + fp), 1e-6);
  EXPECT_NEAR(run(metrics::Recall()), tp / (tp + fn), 1e-6);
  // AUC: the exact ROC area of these scores (as a rank statistic) is close to Keras's 200-threshold one.
  double pairs = 0, wins = 0;
  for (std::size_t i = 0; i < d.probs.size(); ++i)
    for (std::size_t j = 0; j < d.probs.size(); ++j)
      if (d.binary_targets[i] == 1.f && d.binary_targets[j] == 0.f) {
        pairs += 1;
        wins += d.probs[i] > d.probs[j] ? 1.0 : d.probs[i] == d.probs[j] ? 0.5 : 0.0;
      }
  EXPECT_NEAR(run(metrics::AUC()), wins / pairs, 0.02);
  // With scores on the threshold grid the trapezoids are exact.
  std::vector<float> grid = {0.1f, 0.9f, 0.3f, 0.7f, 0.2f, 0.8f};
  std::vector<float> truth = {0.f, 1.f, 1.f, 0.f, 0.f, 1.f};
  const double auc = run_metric(metrics::AUC(11), grid, 1, truth.data(), DType::float32, 1, ones);
  // Positives 0.9, 0.3, 0.8 against negatives 0.1, 0.7, 0.2: 8 of 9 pairs ordered.
  EXPECT_NEAR(auc, 8.0 / 9.0, 1e-6);
}

}  // namespace
}  // namespace strata
