#include "api/losses.h"

#include <fmt/format.h>

#include <optional>
#include <stdexcept>

#include "api/targets.h"
#include "graph/ops.h"
#include "io/keras_object.h"

namespace strata {

namespace {

using targets::as_float;

constexpr float kEpsilon = 1e-7f;  // keras.config.epsilon()

// The input of the node that produced `y`, when that node is `kind` (a softmax over the last axis or a
// sigmoid), so that a crossentropy can use the logits.
std::optional<Tensor> logits_before(const Tensor& y, bool softmax) {
  const Graph& g = y.graph();
  const int producer = g.value(y.id()).producer;
  if (producer < 0) return std::nullopt;
  const Node& node = g.node(producer);
  if (softmax && node.kind == OpKind::softmax && !node.attrs.log && (node.attrs.axis == -1 || node.attrs.axis == y.rank() - 1))
    return Tensor(y.graph_ptr(), node.inputs[0]);
  if (!softmax && node.kind == OpKind::unary && node.attrs.unary == UnaryOp::sigmoid) return Tensor(y.graph_ptr(), node.inputs[0]);
  return std::nullopt;
}

// The targets in y_pred's rank, as Keras's squeeze_or_expand_to_same_rank: (batch,) targets meet
// (batch, 1) predictions. Other shapes must match.
Tensor matched_targets(const Tensor& y_true, const Tensor& y_pred, const char* loss) {
  const Shape a = y_true.shape(), b = y_pred.shape();
  if (a.rank() + 1 == b.rank() && b[b.rank() - 1] == 1) return ops::expand_dims(y_true, -1);
  if (a.rank() == b.rank() + 1 && a[a.rank() - 1] == 1) return ops::squeeze(y_true, -1);
  bool ok = a.rank() == b.rank();
  for (int i = 1; ok && i < a.rank(); ++i) ok = a[i] == b[i] || a[i] < 0 || b[i] < 0;
  if (!ok)
    throw std::invalid_argument(fmt::format("{}: targets of shape {} do not match predictions of shape {}", loss,
                                            a.to_string(), b.to_string()));
  return y_true;
}

void require_same_shape(const Tensor& y_true, const Tensor& y_pred, const char* loss) {
  const Shape& a = y_true.shape();
  const Shape& b = y_pred.shape();
  bool ok = a.rank() == b.rank();
  for (int i = 1; ok && i < a.rank(); ++i) ok = a[i] == b[i] || a[i] < 0 || b[i] < 0;
  if (!ok)
    throw std::invalid_argument(fmt::format("{}: targets of shape {} do not match predictions of shape {}", loss,
                                            a.to_string(), b.to_string()));
}

Json crossentropy_config(const Loss& l, const CrossentropyOptions& o) {
  return {{"name", l.name()}, {"reduction", "sum_over_batch_size"}, {"from_logits", o.from_logits},
          {"label_smoothing", o.label_smoothing}, {"axis", -1}};
}

}  // namespace

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight, const Tensor& mask) const {
  NameScope scope(y_pred.graph(), name());
  const Tensor per = per_sample(y_true, y_pred);
  const Tensor weighted = ops::multiply(per, targets::weights_like(sample_weight, per));
  Tensor kept = mask.valid() && mask.rank() == per.rank() ? mask : Tensor();
  if (const Tensor own = own_mask(y_true, y_pred); own.valid()) kept = kept.valid() ? ops::multiply(kept, own) : own;
  if (!kept.valid()) return ops::mean(weighted);
  // sum(loss * weight * mask) / sum(mask): zero when every entry is masked (Keras's divide_no_nan).
  return ops::divide(ops::sum(ops::multiply(weighted, kept)), ops::maximum(ops::sum(kept), 1e-30f));
}

namespace losses {

Tensor MeanSquaredError::per_sample(const Tensor& targets, const Tensor& y_pred) const {
  const Tensor y_true = matched_targets(targets, y_pred, "mean_squared_error");
  return ops::mean(ops::square(ops::subtract(y_pred, as_float(y_true))), {-1});
}

Tensor MeanAbsoluteError::per_sample(const Tensor& targets, const Tensor& y_pred) const {
  const Tensor y_true = matched_targets(targets, y_pred, "mean_absolute_error");
  return ops::mean(ops::abs(ops::subtract(y_pred, as_float(y_true))), {-1});
}

Json Huber::get_config() const { return {{"name", name()}, {"reduction", "sum_over_batch_size"}, {"delta", delta}}; }

Tensor Huber::per_sample(const Tensor& targets, const Tensor& y_pred) const {
  const Tensor y_true = matched_targets(targets, y_pred, "huber_loss");
  // 0.5 e^2 where |e| <= delta, delta |e| - 0.5 delta^2 elsewhere, written as 0.5 q^2 + delta (|e| - q)
  // with q = min(|e|, delta) so that no select is needed.
  const Tensor e = ops::abs(ops::subtract(y_pred, as_float(y_true)));
  const Tensor q = ops::minimum(e, delta);
  return ops::mean(ops::add(ops::multiply(ops::square(q), 0.5f), ops::multiply(ops::subtract(e, q), delta)), {-1});
}

Json BinaryCrossentropy::get_config() const { return crossentropy_config(*this, options); }

Tensor BinaryCrossentropy::per_sample(const Tensor& targets, const Tensor& y_pred) const {
  Tensor y_true = as_float(matched_targets(targets, y_pred, "binary_crossentropy"));
  if (options.label_smoothing > 0.f)
    y_true = ops::add(ops::multiply(y_true, 1.f - options.label_smoothing), 0.5f * options.label_smoothing);
  std::optional<Tensor> logits = options.from_logits ? std::optional<Tensor>(y_pred) : logits_before(y_pred, false);
  Tensor per;
  if (logits) {
    // softplus(x) - x z: the stable form of -z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x)).
    per = ops::subtract(ops::softplus(*logits), ops::multiply(*logits, y_true));
  } else {
    const Tensor p = ops::clip(y_pred, kEpsilon, 1.f - kEpsilon);
    per = ops::negative(ops::add(ops::multiply(y_true, ops::log(p)),
                                 ops::multiply(ops::subtract(1.f, y_true), ops::log(ops::subtract(1.f, p)))));
  }
  return ops::mean(per, {-1});
}

Json CategoricalCrossentropy::get_config() const { return crossentropy_config(*this, options); }

namespace {
// log-probabilities of y_pred over its last axis, from logits when they are available.
Tensor log_probabilities(const Tensor& y_pred, bool from_logits) {
  std::optional<Tensor> logits = from_logits ? std::optional<Tensor>(y_pred) : logits_before(y_pred, true);
  if (logits) return ops::log_softmax(*logits, -1);
  const Tensor normalized = ops::divide(y_pred, ops::sum(y_pred, {-1}, true));
  return ops::log(ops::clip(normalized, kEpsilon, 1.f - kEpsilon));
}
}  // namespace

Tensor CategoricalCrossentropy::per_sample(const Tensor& y_true_in, const Tensor& y_pred) const {
  require_same_shape(y_true_in, y_pred, "categorical_crossentropy");
  Tensor y_true = as_float(y_true_in);
  const std::int64_t classes = y_pred.shape()[y_pred.rank() - 1];
  if (options.label_smoothing > 0.f)
    y_true = ops::add(ops::multiply(y_true, 1.f - options.label_smoothing), options.label_smoothing / float(classes));
  return ops::negative(ops::sum(ops::multiply(y_true, log_probabilities(y_pred, options.from_logits)), {-1}));
}

Json SparseCategoricalCrossentropy::get_config() const {
  Json c = crossentropy_config(*this, options);
  c.erase("label_smoothing");
  c["ignore_class"] = ignore_class ? Json(*ignore_class) : Json(nullptr);
  return c;
}

Tensor SparseCategoricalCrossentropy::own_mask(const Tensor& y_true, const Tensor& y_pred) const {
  if (!ignore_class) return Tensor();
  const Tensor labels = ops::cast(targets::class_indices(y_true, y_pred, name()), DType::float32);
  return ops::cast(ops::not_equal(labels, float(*ignore_class)), DType::float32);
}

Tensor SparseCategoricalCrossentropy::per_sample(const Tensor& y_true_in, const Tensor& y_pred) const {
  Tensor labels = targets::class_indices(y_true_in, y_pred, name());
  Tensor kept;
  if (ignore_class) {
    // Ignored entries pick class 0 (their label may be out of range) and then count as zero.
    kept = own_mask(y_true_in, y_pred);
    labels = ops::cast(ops::multiply(ops::cast(labels, DType::float32), kept), DType::int32);
  }
  const Tensor log_p = log_probabilities(y_pred, options.from_logits);
  Tensor picked = ops::gather(log_p, labels, y_pred.rank() - 1, y_pred.rank() - 1);
  if (options.label_smoothing > 0.f) {
    const std::int64_t classes = y_pred.shape()[y_pred.rank() - 1];
    const float ls = options.label_smoothing;
    picked = ops::add(ops::multiply(picked, 1.f - ls), ops::multiply(ops::sum(log_p, {-1}), ls / float(classes)));
  }
  return kept.valid() ? ops::negative(ops::multiply(picked, kept)) : ops::negative(picked);
}

Tensor KLDivergence::per_sample(const Tensor& y_true_in, const Tensor& y_pred) const {
  require_same_shape(y_true_in, y_pred, "kl_divergence");
  const Tensor t = ops::clip(as_float(y_true_in), kEpsilon, 1.f);
  const Tensor p = ops::clip(y_pred, kEpsilon, 1.f);
  return ops::sum(ops::multiply(t, ops::log(ops::divide(t, p))), {-1});
}

}  // namespace losses

std::shared_ptr<Loss> get_loss(const Json& identifier) {
  const io::KerasObject parsed = io::parse_keras_object(identifier, "loss");
  const std::string& name = parsed.name;
  const Json& c = parsed.config;
  const CrossentropyOptions xent{c.value("from_logits", false), c.contains("label_smoothing") && c.at("label_smoothing").is_number()
                                                                    ? c.at("label_smoothing").get<float>() : 0.f};
  using namespace losses;
  if (name == "mse" || name == "mean_squared_error" || name == "MeanSquaredError") return std::make_shared<MeanSquaredError>();
  if (name == "mae" || name == "mean_absolute_error" || name == "MeanAbsoluteError") return std::make_shared<MeanAbsoluteError>();
  if (name == "huber" || name == "huber_loss" || name == "Huber")
    return std::make_shared<Huber>(c.contains("delta") && c.at("delta").is_number() ? c.at("delta").get<float>() : 1.f);
  if (name == "binary_crossentropy" || name == "BinaryCrossentropy") return std::make_shared<BinaryCrossentropy>(xent);
  if (name == "categorical_crossentropy" || name == "CategoricalCrossentropy") return std::make_shared<CategoricalCrossentropy>(xent);
  if (name == "sparse_categorical_crossentropy" || name == "SparseCategoricalCrossentropy") {
    std::optional<int> ignore;
    if (c.contains("ignore_class") && !c.at("ignore_class").is_null()) {
      if (!c.at("ignore_class").is_number_integer())
        throw std::invalid_argument(fmt::format("SparseCategoricalCrossentropy: ignore_class must be an integer or null, got {}",
                                                c.at("ignore_class").dump()));
      ignore = c.at("ignore_class").get<int>();
    }
    return std::make_shared<SparseCategoricalCrossentropy>(xent, ignore);
  }
  if (name == "kld" || name == "kl_divergence" || name == "KLDivergence") return std::make_shared<KLDivergence>();
  throw std::invalid_argument(fmt::format(
      "unknown loss '{}' (known: mean_squared_error, mean_absolute_error, huber, binary_crossentropy, "
      "categorical_crossentropy, sparse_categorical_crossentropy, kl_divergence)", name));
}

}  // namespace strata
