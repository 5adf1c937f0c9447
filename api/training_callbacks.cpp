#include "api/training_callbacks.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "api/model.h"
#include "api/model_checkpoint.h"

namespace strata {

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  if (options_.mode != "auto" && options_.mode != "min" && options_.mode != "max")
    throw std::invalid_argument(fmt::format("EarlyStopping: mode must be \"auto\", \"min\" or \"max\", got \"{}\"", options_.mode));
  maximize_ = options_.mode == "max" || (options_.mode == "auto" && larger_is_better(options_.monitor));
  options_.min_delta = std::fabs(options_.min_delta);
}

bool EarlyStopping::improved(double value, double reference) const {
  return maximize_ ? value - options_.min_delta > reference : value + options_.min_delta < reference;
}

void EarlyStopping::on_train_begin(const Logs&) {
  wait_ = stopped_epoch_ = best_epoch_ = 0;
  best_ = maximize_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  best_weights_.clear();
}

void EarlyStopping::on_epoch_end(int epoch, const Logs& logs) {
  auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    std::string keys;
    for (const auto& [k, v] : logs) keys += (keys.empty() ? "" : ", ") + k;
    fmt::print(stderr, "EarlyStopping: '{}' is not in the logs (available: {}); not stopping\n", options_.monitor, keys);
    return;
  }
  if (epoch < options_.start_from_epoch) return;
  const double current = it->second;
  if (options_.restore_best_weights && best_weights_.empty()) best_weights_ = model()->get_weights();
  ++wait_;
  if (improved(current, best_)) {
    best_ = current;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = model()->get_weights();
    if (!options_.baseline || improved(current, *options_.baseline)) {
      wait_ = 0;
      return;
    }
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model()->stop_training = true;
  }
}

void EarlyStopping::on_train_end(const Logs&) {
  if (stopped_epoch_ > 0 && options_.verbose > 0) fmt::print("Epoch {}: early stopping\n", stopped_epoch_ + 1);
  if (options_.restore_best_weights && !best_weights_.empty() && stopped_epoch_ > 0) {
    if (options_.verbose > 0) fmt::print("Restoring model weights from the end of the best epoch: {}.\n", best_epoch_ + 1);
    model()->set_weights(best_weights_);
  }
}

void TerminateOnNaN::on_train_batch_end(std::int64_t batch, const Logs& logs) {
  auto it = logs.find("loss");
  if (it != logs.end() && !std::isfinite(it->second)) {
    fmt::print("Batch {}: Invalid loss, terminating training\n", batch);
    model()->stop_training = true;
  }
}

CSVLogger::CSVLogger(std::string filename, std::string separator, bool append)
    : filename_(std::move(filename)), separator_(std::move(separator)), append_(append) {}

CSVLogger::~CSVLogger() {
  if (file_) std::fclose(file_);
}

void CSVLogger::on_train_begin(const Logs&) {
  // Appending to an existing file continues its columns without a second header.
  bool has_header = false;
  if (append_)
    if (std::FILE* existing = std::fopen(filename_.c_str(), "r")) {
      has_header = std::fgetc(existing) != EOF;
      std::fclose(existing);
    }
  file_ = std::fopen(filename_.c_str(), append_ ? "a" : "w");
  if (!file_) throw std::runtime_error(fmt::format("CSVLogger: cannot open '{}' for writing", filename_));
  keys_.clear();
  if (has_header) keys_.push_back("");  // marks the header as written
}

void CSVLogger::on_epoch_end(int epoch, const Logs& logs) {
  if (keys_.empty() || (keys_.size() == 1 && keys_[0].empty())) {
    const bool write_header = keys_.empty();
    keys_.clear();
    for (const auto& [k, v] : logs) keys_.push_back(k);
    if (write_header) {
      std::string header = "epoch";
      for (const auto& k : keys_) header += separator_ + k;
      std::fprintf(file_, "%s\n", header.c_str());
    }
  }
  std::string row = fmt::format("{}", epoch);
  for (const auto& k : keys_) {
    auto it = logs.find(k);
    row += separator_ + (it == logs.end() ? std::string("NA") : fmt::format("{}", it->second));
  }
  std::fprintf(file_, "%s\n", row.c_str());
  std::fflush(file_);
}

void CSVLogger::on_train_end(const Logs&) {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options) : options_(std::move(options)) {
  if (options_.factor >= 1.0) throw std::invalid_argument("ReduceLROnPlateau does not support a factor >= 1.0");
  if (options_.mode != "auto" && options_.mode != "min" && options_.mode != "max")
    throw std::invalid_argument(fmt::format("ReduceLROnPlateau: mode must be \"auto\", \"min\" or \"max\", got \"{}\"", options_.mode));
  maximize_ = options_.mode == "max" || (options_.mode == "auto" && larger_is_better(options_.monitor));
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  wait_ = cooldown_counter_ = 0;
  best_ = maximize_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

void ReduceLROnPlateau::on_epoch_end(int epoch, const Logs& logs) {
  auto it = logs.find(options_.monitor);
  if (it == logs.end()) {
    fmt::print(stderr, "ReduceLROnPlateau: '{}' is not in the logs; not changing the learning rate\n", options_.monitor);
    return;
  }
  const double current = it->second;
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  const bool better = maximize_ ? current > best_ + options_.min_delta : current < best_ - options_.min_delta;
  if (better) {
    best_ = current;
    wait_ = 0;
  } else if (cooldown_counter_ <= 0 && ++wait_ >= options_.patience) {
    Optimizer& optimizer = *model()->optimizer();
    const double old_lr = optimizer.learning_rate();
    if (old_lr > options_.min_lr) {
      const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
      optimizer.set_learning_rate(float(new_lr));
      if (options_.verbose > 0) fmt::print("\nEpoch {}: ReduceLROnPlateau reducing learning rate to {}.\n", epoch + 1, new_lr);
      cooldown_counter_ = options_.cooldown;
      wait_ = 0;
    }
  }
}

LearningRateScheduler::LearningRateScheduler(std::function<double(int, double)> schedule, int verbose)
    : schedule_(std::move(schedule)), verbose_(verbose) {}

LearningRateScheduler::LearningRateScheduler(std::shared_ptr<LearningRateSchedule> schedule, int verbose)
    : schedule_([schedule](int epoch, double) { return double((*schedule)(epoch)); }), verbose_(verbose) {
  if (!schedule) throw std::invalid_argument("LearningRateScheduler: no schedule");
}

void LearningRateScheduler::on_epoch_begin(int epoch, const Logs&) {
  Optimizer& optimizer = *model()->optimizer();
  const double lr = schedule_(epoch, optimizer.learning_rate());
  if (!std::isfinite(lr)) throw std::invalid_argument(fmt::format("LearningRateScheduler: the schedule gave {} for epoch {}", lr, epoch));
  optimizer.set_learning_rate(float(lr));
  if (verbose_ > 0) fmt::print("\nEpoch {}: LearningRateScheduler setting learning rate to {}.\n", epoch + 1, lr);
}

Optimizer& SwapEMAWeights::averaging_optimizer() const {
  if (!model() || !model()->optimizer()) throw std::logic_error("SwapEMAWeights: the model has no optimizer; compile it first");
  Optimizer& optimizer = *model()->optimizer();
  if (!optimizer.moving_average().use_ema)
    throw std::invalid_argument(fmt::format("SwapEMAWeights: the model's {} optimizer needs use_ema=true", optimizer.class_name()));
  if (optimizer.variables().empty())
    throw std::logic_error("SwapEMAWeights: the optimizer holds no moving averages yet; train the model first");
  return optimizer;
}

void SwapEMAWeights::on_train_begin(const Logs&) {
  averages_in_model_ = false;
  if (model() && model()->optimizer() && !model()->optimizer()->moving_average().use_ema)
    (void)averaging_optimizer();  // throws, naming the optimizer
}

void SwapEMAWeights::swap_in() {
  if (averages_in_model_) return;
  averaging_optimizer().swap_moving_averages();
  averages_in_model_ = true;
}

void SwapEMAWeights::swap_out() {
  if (!averages_in_model_) return;
  averaging_optimizer().swap_moving_averages();
  averages_in_model_ = false;
}

void SwapEMAWeights::on_epoch_begin(int, const Logs&) {
  if (swap_on_epoch_) swap_out();
}

void SwapEMAWeights::on_epoch_end(int epoch, const Logs&) {
  if (!swap_on_epoch_ || averages_in_model_) return;
  swap_in();
  // fit() ends by putting the averages into the weights; after the last epoch they are already there, so the
  // averages must hold them too (Keras's _finalize_ema_values).
  if (epoch == params().epochs - 1) averaging_optimizer().copy_variables_to_moving_averages();
}

void SwapEMAWeights::on_test_begin(const Logs&) { swap_in(); }
void SwapEMAWeights::on_test_end(const Logs&) { swap_out(); }
void SwapEMAWeights::on_predict_begin(const Logs&) { swap_in(); }
void SwapEMAWeights::on_predict_end(const Logs&) { swap_out(); }

}  // namespace strata
