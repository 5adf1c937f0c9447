// keras.callbacks.ModelCheckpoint: saves the model (or its weights) during fit, at the end of every epoch
// or every N batches, to a path formatted from the epoch and the logs ("ckpt-{epoch:02d}-{val_loss:.2f}.keras"),
// optionally only when the monitored value improves. Saves are atomic.
#pragma once

#include <optional>
#include <string>

#include "api/callbacks.h"

namespace strata {

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;
  bool save_weights_only = false;  // then the path must end in .weights.h5; otherwise .keras or .h5
  std::string mode = "auto";       // "min", "max", or from the monitored name
  std::optional<int> save_freq;    // unset: every epoch (Keras's "epoch"); N: every N batches
  std::optional<double> initial_value_threshold;
};

class ModelCheckpoint : public Callback {
 public:
  bool chief_only() const override { return true; }
  explicit ModelCheckpoint(std::string filepath, ModelCheckpointOptions options = {});
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override;
  std::optional<double> best() const { return best_; }

 private:
  void save(int epoch, std::optional<std::int64_t> batch, const Logs& logs);
  bool improves(double value) const;

  std::string filepath_;
  ModelCheckpointOptions options_;
  bool maximize_ = false;
  std::optional<double> best_;
  int epoch_ = 0;
  std::int64_t batches_since_save_ = 0;
};

// Python's str.format for a checkpoint path: {name} or {name:spec} with `epoch` (and `batch`) as integers
// and every log as a number; "{{" and "}}" are literal braces. Throws naming the path and the field.
std::string format_checkpoint_path(const std::string& pattern, int epoch, std::optional<std::int64_t> batch, const Logs& logs);

// Whether a larger value of the logged quantity `name` is better (accuracy, AUC, ...), as Keras decides
// for mode "auto"; throws when the name says neither.
bool larger_is_better(const std::string& name);

}  // namespace strata
