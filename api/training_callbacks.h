// Keras's training callbacks EarlyStopping, TerminateOnNaN, CSVLogger, ReduceLROnPlateau,
// LearningRateScheduler and SwapEMAWeights, with Keras's defaults.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "api/array.h"
#include "api/callbacks.h"
#include "optimizers/schedules.h"

namespace strata {

class Optimizer;

struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  int verbose = 0;
  std::string mode = "auto";  // "min", "max", or "auto": from the monitored name, as Keras decides
  std::optional<double> baseline;
  bool restore_best_weights = false;
  int start_from_epoch = 0;
};

// Stops fit() once `monitor` has not improved by min_delta for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;
  int stopped_epoch() const { return stopped_epoch_; }

 private:
  bool improved(double value, double reference) const;
  EarlyStoppingOptions options_;
  bool maximize_ = false;
  int wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  double best_ = 0;
  std::vector<Array> best_weights_;
};

// Stops fit() at the first batch whose loss is NaN or infinite.
class TerminateOnNaN : public Callback {
 public:
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override;
};

// Appends each epoch's logs to a CSV file: "epoch" then the log keys in sorted order, as Keras.
class CSVLogger : public Callback {
 public:
  bool chief_only() const override { return true; }
  explicit CSVLogger(std::string filename, std::string separator = ",", bool append = false);
  ~CSVLogger() override;
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;

 private:
  std::string filename_, separator_;
  bool append_;
  std::FILE* file_ = nullptr;
  std::vector<std::string> keys_;
};

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;
  int patience = 10;
  int verbose = 0;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0.0;
};

// Multiplies the learning rate by `factor` once `monitor` has not improved for `patience` epochs.
class ReduceLROnPlateau : public Callback {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  ReduceLROnPlateauOptions options_;
  bool maximize_ = false;
  int wait_ = 0, cooldown_counter_ = 0;
  double best_ = 0;
};

// Sets the learning rate at the start of each epoch to schedule(epoch, current rate), as Keras's.
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0);
  // A Keras schedule object (ExponentialDecay, ...) evaluated at the epoch index.
  explicit LearningRateScheduler(std::shared_ptr<LearningRateSchedule> schedule, int verbose = 0);
  void on_epoch_begin(int epoch, const Logs& logs) override;

 private:
  std::function<double(int, double)> schedule_;
  int verbose_;
};

// For an optimizer with use_ema: evaluation and prediction (validation in fit() too) run with the moving
// averages in place of the weights, which come back afterwards. With swap_on_epoch, the averages are also
// in place between epochs, for the callbacks that follow this one (ModelCheckpoint saves them).
class SwapEMAWeights : public Callback {
 public:
  explicit SwapEMAWeights(bool swap_on_epoch = false) : swap_on_epoch_(swap_on_epoch) {}
  // Fails before the first epoch, not at the first validation, when the optimizer has no use_ema.
  void on_train_begin(const Logs& logs) override;
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_test_begin(const Logs& logs) override;
  void on_test_end(const Logs& logs) override;
  void on_predict_begin(const Logs& logs) override;
  void on_predict_end(const Logs& logs) override;

 private:
  Optimizer& averaging_optimizer() const;
  void swap_in();
  void swap_out();
  bool swap_on_epoch_;
  bool averages_in_model_ = false;
};

}  // namespace strata
