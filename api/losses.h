// Losses with Keras's names, formulas and reduction ("sum_over_batch_size": the weighted per-sample
// losses summed and divided by their count).
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <memory>
#include <optional>
#include <string>

#include "graph/graph.h"

namespace strata {

using Json = nlohmann::json;

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string class_name() const = 0;
  // The snake_case name Keras logs and serializes ("sparse_categorical_crossentropy").
  virtual std::string name() const = 0;
  virtual Json get_config() const { return {{"name", name()}, {"reduction", "sum_over_batch_size"}}; }
  // Whether y_true holds class indices (fed as int32) instead of values shaped like y_pred.
  virtual bool sparse_labels() const { return false; }
  // The loss of each sample (and timestep): y_pred's shape without its last axis.
  virtual Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const = 0;
  // Entries the loss itself leaves out (1 kept, 0 left out), shaped like per_sample's result; invalid when
  // it keeps every entry.
  virtual Tensor own_mask(const Tensor& /*y_true*/, const Tensor& /*y_pred*/) const { return Tensor(); }
  // The scalar loss: mean of per_sample(...) * sample_weight (shape (batch,)). With a mask shaped like
  // per_sample's result (y_pred's Keras mask, and own_mask's), the mean over the unmasked entries only, as Keras.
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight, const Tensor& mask = Tensor()) const;
};

struct CrossentropyOptions {
  bool from_logits = false;
  float label_smoothing = 0.f;
};

namespace losses {

struct MeanSquaredError : Loss {
  std::string class_name() const override { return "MeanSquaredError"; }
  std::string name() const override { return "mean_squared_error"; }
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

struct MeanAbsoluteError : Loss {
  std::string class_name() const override { return "MeanAbsoluteError"; }
  std::string name() const override { return "mean_absolute_error"; }
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

struct Huber : Loss {
  float delta = 1.f;
  explicit Huber(float d = 1.f) : delta(d) {}
  std::string class_name() const override { return "Huber"; }
  std::string name() const override { return "huber_loss"; }
  Json get_config() const override;
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

// When y_pred comes straight from a sigmoid (softmax) and from_logits is false, the crossentropies below
// read the logits before it and use the exact log-sigmoid (log-softmax) form, as TensorFlow's Keras does.
struct BinaryCrossentropy : Loss {
  CrossentropyOptions options;
  explicit BinaryCrossentropy(CrossentropyOptions o = {}) : options(o) {}
  std::string class_name() const override { return "BinaryCrossentropy"; }
  std::string name() const override { return "binary_crossentropy"; }
  Json get_config() const override;
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

struct CategoricalCrossentropy : Loss {
  CrossentropyOptions options;
  explicit CategoricalCrossentropy(CrossentropyOptions o = {}) : options(o) {}
  std::string class_name() const override { return "CategoricalCrossentropy"; }
  std::string name() const override { return "categorical_crossentropy"; }
  Json get_config() const override;
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

struct SparseCategoricalCrossentropy : Loss {
  CrossentropyOptions options;  // label_smoothing spreads over the classes as for one-hot labels
  // Keras's ignore_class: entries with this label (a segmentation's "void", often -1 or 255) add no loss and
  // are not counted in the mean.
  std::optional<int> ignore_class;
  explicit SparseCategoricalCrossentropy(CrossentropyOptions o = {}, std::optional<int> ignore = std::nullopt)
      : options(o), ignore_class(ignore) {}
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  std::string name() const override { return "sparse_categorical_crossentropy"; }
  Json get_config() const override;
  bool sparse_labels() const override { return true; }
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
  Tensor own_mask(const Tensor& y_true, const Tensor& y_pred) const override;
};

struct KLDivergence : Loss {
  std::string class_name() const override { return "KLDivergence"; }
  std::string name() const override { return "kl_divergence"; }
  Tensor per_sample(const Tensor& y_true, const Tensor& y_pred) const override;
};

}  // namespace losses

// A loss by Keras name ("mse", "sparse_categorical_crossentropy", "CategoricalCrossentropy") or Keras
// serialization ({"class_name": "Huber", "config": {"delta": 2.0}}).
std::shared_ptr<Loss> get_loss(const Json& identifier);

// What compile() takes for a loss: a name, a config, or a loss object.
class LossRef {
 public:
  LossRef() = default;
  LossRef(const char* name) : loss_(get_loss(name)) {}         // NOLINT: implicit on purpose
  LossRef(const std::string& name) : loss_(get_loss(name)) {}  // NOLINT
  LossRef(std::shared_ptr<Loss> loss) : loss_(std::move(loss)) {}  // NOLINT
  template <class L>
    requires std::derived_from<L, Loss>
  LossRef(L loss) : loss_(std::make_shared<L>(std::move(loss))) {}  // NOLINT
  const std::shared_ptr<Loss>& get() const { return loss_; }

 private:
  std::shared_ptr<Loss> loss_;
};

}  // namespace strata
