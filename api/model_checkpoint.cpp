#include "api/model_checkpoint.h"

#include <fmt/format.h>

#include <stdexcept>

#include "api/model.h"

namespace strata {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

bool larger_is_better(const std::string& monitor) {
  const std::string name = monitor.rfind("val_", 0) == 0 ? monitor.substr(4) : monitor;
  if (name == "loss" || contains(name, "error") || contains(name, "crossentropy") || contains(name, "divergence") || name == "mse" ||
      name == "mae" || name == "rmse" || name == "huber" || contains(name, "_loss"))
    return false;
  if (contains(name, "acc") || contains(name, "auc") || contains(name, "precision") || contains(name, "recall")) return true;
  throw std::invalid_argument(fmt::format("cannot tell whether '{}' should be maximized or minimized: pass mode \"max\" or \"min\"", monitor));
}

std::string format_checkpoint_path(const std::string& pattern, int epoch, std::optional<std::int64_t> batch, const Logs& logs) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if ((c == '{' || c == '}') && i + 1 < pattern.size() && pattern[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') throw std::invalid_argument(fmt::format("checkpoint path \"{}\": single '}}' at {}", pattern, i));
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const std::size_t close = pattern.find('}', i);
    if (close == std::string::npos) throw std::invalid_argument(fmt::format("checkpoint path \"{}\": '{{' at {} is not closed", pattern, i));
    const std::string field = pattern.substr(i + 1, close - i - 1);
    const std::size_t colon = field.find(':');
    const std::string name = field.substr(0, colon), spec = colon == std::string::npos ? "" : field.substr(colon + 1);
    const std::string format = "{:" + spec + "}";
    try {
      if (name == "epoch") {
        out += fmt::format(fmt::runtime(format), epoch + 1);
      } else if (name == "batch" && batch) {
        out += fmt::format(fmt::runtime(format), *batch + 1);
      } else {
        const auto it = logs.find(name);
        if (it == logs.end()) {
          std::string known = "epoch";
          for (const auto& [k, v] : logs) known += ", " + k;
          throw std::invalid_argument(fmt::format("checkpoint path \"{}\": no value named '{}' (there are: {})", pattern, name, known));
        }
        out += fmt::format(fmt::runtime(format), it->second);
      }
    } catch (const fmt::format_error& e) {
      throw std::invalid_argument(fmt::format("checkpoint path \"{}\": cannot format '{}' with '{}': {}", pattern, name, spec, e.what()));
    }
    i = close;
  }
  return out;
}

ModelCheckpoint::ModelCheckpoint(std::string filepath, ModelCheckpointOptions options) : filepath_(std::move(filepath)), options_(std::move(options)) {
  if (options_.save_weights_only) {
    if (!ends_with(filepath_, ".weights.h5"))
      throw std::invalid_argument(fmt::format("ModelCheckpoint: with save_weights_only the path must end in .weights.h5, got \"{}\"", filepath_));
  } else if (!ends_with(filepath_, ".keras") && !ends_with(filepath_, ".h5")) {
    throw std::invalid_argument(fmt::format("ModelCheckpoint: the path must end in .keras or .h5, got \"{}\"", filepath_));
  }
  if (options_.save_freq && *options_.save_freq <= 0)
    throw std::invalid_argument(fmt::format("ModelCheckpoint: save_freq must be positive, got {}", *options_.save_freq));
  if (options_.mode == "max") maximize_ = true;
  else if (options_.mode == "min") maximize_ = false;
  else if (options_.mode == "auto") maximize_ = options_.save_best_only ? larger_is_better(options_.monitor) : false;
  else throw std::invalid_argument(fmt::format("ModelCheckpoint: mode must be \"auto\", \"min\" or \"max\", got \"{}\"", options_.mode));
  best_ = options_.initial_value_threshold;
}

bool ModelCheckpoint::improves(double value) const { return !best_ || (maximize_ ? value > *best_ : value < *best_); }

void ModelCheckpoint::on_epoch_begin(int epoch, const Logs&) { epoch_ = epoch; }

void ModelCheckpoint::on_epoch_end(int epoch, const Logs& logs) {
  if (!options_.save_freq) save(epoch, std::nullopt, logs);
}

void ModelCheckpoint::on_train_batch_end(std::int64_t batch, const Logs& logs) {
  if (!options_.save_freq) return;
  if (++batches_since_save_ >= *options_.save_freq) {
    batches_since_save_ = 0;
    save(epoch_, batch, logs);
  }
}

void ModelCheckpoint::save(int epoch, std::optional<std::int64_t> batch, const Logs& logs) {
  if (!model()) throw std::logic_error("ModelCheckpoint: not attached to a model");
  const std::string path = format_checkpoint_path(filepath_, epoch, batch, logs);
  if (options_.save_best_only) {
    const auto it = logs.find(options_.monitor);
    if (it == logs.end()) {
      fmt::print(stderr, "ModelCheckpoint: can save the best model only with {} available; saving\n", options_.monitor);
    } else if (!improves(it->second)) {
      if (options_.verbose > 0) fmt::print("\nEpoch {}: {} did not improve from {:.5f}\n", epoch + 1, options_.monitor, *best_);
      return;
    } else {
      if (options_.verbose > 0)
        fmt::print("\nEpoch {}: {} improved from {} to {:.5f}, saving model to {}\n", epoch + 1, options_.monitor,
                   best_ ? fmt::format("{:.5f}", *best_) : std::string("None"), it->second, path);
      best_ = it->second;
    }
  } else if (options_.verbose > 0) {
    fmt::print("\nEpoch {}: saving model to {}\n", epoch + 1, path);
  }
  if (options_.save_weights_only) model()->save_weights(path);
  else model()->save(path);
}

}  // namespace strata
