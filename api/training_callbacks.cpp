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

}  // namespace strata
