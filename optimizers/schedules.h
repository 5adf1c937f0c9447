// Learning-rate schedules with Keras's names, formulas and config keys: the rate as a function of the
// optimizer's iteration count (0 at the first step).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata {

using Json = nlohmann::json;

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  virtual float operator()(std::int64_t step) const = 0;
  virtual std::string class_name() const = 0;
  virtual Json get_config() const = 0;
  Json to_json() const;
};

namespace schedules {

// initial_learning_rate * decay_rate ^ (step / decay_steps), the exponent floored when staircase.
struct ExponentialDecay : LearningRateSchedule {
  double initial_learning_rate, decay_steps, decay_rate;
  bool staircase = false;
  ExponentialDecay(double initial, double steps, double rate, bool stair = false);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "ExponentialDecay"; }
  Json get_config() const override;
};

// values[i] while step <= boundaries[i] (and after the previous boundary); values.back() past the last.
struct PiecewiseConstantDecay : LearningRateSchedule {
  std::vector<double> boundaries, values;
  PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  Json get_config() const override;
};

// Optional linear warmup to warmup_target over warmup_steps, then cosine decay over decay_steps down to
// alpha times the peak.
struct CosineDecay : LearningRateSchedule {
  double initial_learning_rate, decay_steps, alpha = 0.0;
  std::optional<double> warmup_target;
  double warmup_steps = 0;
  CosineDecay(double initial, double steps, double alpha = 0.0, std::optional<double> warmup_target = std::nullopt,
              double warmup_steps = 0);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "CosineDecay"; }
  Json get_config() const override;
};

// initial_learning_rate / (1 + decay_rate * step / decay_steps), the ratio floored when staircase.
struct InverseTimeDecay : LearningRateSchedule {
  double initial_learning_rate, decay_steps, decay_rate;
  bool staircase = false;
  InverseTimeDecay(double initial, double steps, double rate, bool stair = false);
  float operator()(std::int64_t step) const override;
  std::string class_name() const override { return "InverseTimeDecay"; }
  Json get_config() const override;
};

}  // namespace schedules

// A schedule from its Keras serialization {"class_name": ..., "config": {...}}.
std::shared_ptr<LearningRateSchedule> schedule_from_json(const Json& serialized);

// A fixed learning rate or a schedule, as Keras's `learning_rate` argument.
class LearningRate {
 public:
  LearningRate(double value) : value_(float(value)) {}  // NOLINT: implicit on purpose
  LearningRate(float value) : value_(value) {}          // NOLINT
  template <class S>
    requires std::derived_from<S, LearningRateSchedule>
  LearningRate(S schedule) : schedule_(std::make_shared<S>(std::move(schedule))) {}  // NOLINT
  LearningRate(std::shared_ptr<LearningRateSchedule> schedule) : schedule_(std::move(schedule)) {}  // NOLINT

  const std::shared_ptr<LearningRateSchedule>& schedule() const { return schedule_; }
  float value() const { return value_; }

 private:
  float value_ = 0.f;
  std::shared_ptr<LearningRateSchedule> schedule_;
};

}  // namespace strata
