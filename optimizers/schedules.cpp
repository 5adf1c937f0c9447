#include "optimizers/schedules.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "io/keras_object.h"

namespace strata {

Json LearningRateSchedule::to_json() const {
  return {{"module", "keras.optimizers.schedules"}, {"class_name", class_name()}, {"config", get_config()},
          {"registered_name", nullptr}};
}

namespace schedules {

namespace {
// step / decay_steps, floored when the schedule is a staircase.
double progress(std::int64_t step, double decay_steps, bool staircase) {
  const double p = double(step) / decay_steps;
  return staircase ? std::floor(p) : p;
}

void require_positive(double v, const char* schedule, const char* key) {
  if (!(v > 0)) throw std::invalid_argument(fmt::format("{}: {} must be positive, got {}", schedule, key, v));
}
}  // namespace

ExponentialDecay::ExponentialDecay(double initial, double steps, double rate, bool stair)
    : initial_learning_rate(initial), decay_steps(steps), decay_rate(rate), staircase(stair) {
  require_positive(decay_steps, "ExponentialDecay", "decay_steps");
}
float ExponentialDecay::operator()(std::int64_t step) const {
  return float(initial_learning_rate * std::pow(decay_rate, progress(step, decay_steps, staircase)));
}
Json ExponentialDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps}, {"decay_rate", decay_rate},
          {"staircase", staircase}, {"name", "ExponentialDecay"}};
}

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<double> b, std::vector<double> v)
    : boundaries(std::move(b)), values(std::move(v)) {
  if (values.size() != boundaries.size() + 1)
    throw std::invalid_argument(fmt::format("PiecewiseConstantDecay: needs one more value than boundaries, got {} values and {} boundaries",
                                            values.size(), boundaries.size()));
}
float PiecewiseConstantDecay::operator()(std::int64_t step) const {
  for (std::size_t i = 0; i < boundaries.size(); ++i)
    if (double(step) <= boundaries[i]) return float(values[i]);
  return float(values.back());
}
Json PiecewiseConstantDecay::get_config() const {
  return {{"boundaries", boundaries}, {"values", values}, {"name", "PiecewiseConstant"}};
}

CosineDecay::CosineDecay(double initial, double steps, double a, std::optional<double> target, double warmup)
    : initial_learning_rate(initial), decay_steps(steps), alpha(a), warmup_target(target), warmup_steps(warmup) {
  require_positive(decay_steps, "CosineDecay", "decay_steps");
}
float CosineDecay::operator()(std::int64_t step_count) const {
  double step = double(step_count);
  double peak = initial_learning_rate;
  if (warmup_target) {
    if (step < warmup_steps)
      return float(initial_learning_rate + (*warmup_target - initial_learning_rate) * step / warmup_steps);
    peak = *warmup_target;
    step -= warmup_steps;
  }
  step = std::min(step, decay_steps);
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * step / decay_steps));
  return float(peak * ((1.0 - alpha) * cosine + alpha));
}
Json CosineDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps}, {"alpha", alpha},
          {"name", "CosineDecay"}, {"warmup_target", warmup_target ? Json(*warmup_target) : Json(nullptr)},
          {"warmup_steps", warmup_steps}};
}

InverseTimeDecay::InverseTimeDecay(double initial, double steps, double rate, bool stair)
    : initial_learning_rate(initial), decay_steps(steps), decay_rate(rate), staircase(stair) {
  require_positive(decay_steps, "InverseTimeDecay", "decay_steps");
}
float InverseTimeDecay::operator()(std::int64_t step) const {
  return float(initial_learning_rate / (1.0 + decay_rate * progress(step, decay_steps, staircase)));
}
Json InverseTimeDecay::get_config() const {
  return {{"initial_learning_rate", initial_learning_rate}, {"decay_steps", decay_steps}, {"decay_rate", decay_rate},
          {"staircase", staircase}, {"name", "InverseTimeDecay"}};
}

}  // namespace schedules

std::shared_ptr<LearningRateSchedule> schedule_from_json(const Json& s) {
  if (!s.is_object()) throw std::invalid_argument(fmt::format("a learning-rate schedule must be {{\"class_name\", \"config\"}}, got {}", s.dump()));
  const io::KerasObject parsed = io::parse_keras_object(s, "learning-rate schedule");
  const std::string& cls = parsed.name;
  const Json& c = parsed.config;
  auto num = [&](const char* key, std::optional<double> fallback = std::nullopt) {
    if (c.contains(key) && c.at(key).is_number()) return c.at(key).get<double>();
    if (fallback) return *fallback;
    throw std::invalid_argument(fmt::format("{}: '{}' must be a number", cls, key));
  };
  using namespace schedules;
  if (cls == "ExponentialDecay")
    return std::make_shared<ExponentialDecay>(num("initial_learning_rate"), num("decay_steps"), num("decay_rate"), c.value("staircase", false));
  if (cls == "InverseTimeDecay")
    return std::make_shared<InverseTimeDecay>(num("initial_learning_rate"), num("decay_steps"), num("decay_rate"), c.value("staircase", false));
  if (cls == "CosineDecay") {
    std::optional<double> target;
    if (c.contains("warmup_target") && c.at("warmup_target").is_number()) target = c.at("warmup_target").get<double>();
    return std::make_shared<CosineDecay>(num("initial_learning_rate"), num("decay_steps"), num("alpha", 0.0), target, num("warmup_steps", 0.0));
  }
  if (cls == "PiecewiseConstantDecay")
    return std::make_shared<PiecewiseConstantDecay>(c.at("boundaries").get<std::vector<double>>(), c.at("values").get<std::vector<double>>());
  throw std::invalid_argument(fmt::format(
      "unknown learning-rate schedule '{}' (known: ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay)", cls));
}

}  // namespace strata
