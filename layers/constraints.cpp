#include "layers/constraints.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "graph/ops.h"
#include "io/keras_object.h"

namespace strata {

namespace {

constexpr float kEpsilon = 1e-7f;  // keras.backend.epsilon(), which the norms are offset by

bool has_axis(const std::string& class_name) { return class_name != "NonNeg" && class_name != "Constraint"; }

// The axes `axis` names on a weight of `shape`; empty: all of them.
std::vector<int> norm_axes(const nlohmann::json& axis, const Shape& shape) {
  std::vector<int> axes;
  if (axis.is_null()) return axes;
  const nlohmann::json list = axis.is_array() ? axis : nlohmann::json::array({axis});
  for (const auto& a : list) {
    const int rank = shape.rank();
    const int value = a.get<int>();
    if (value < -rank || value >= rank)
      throw std::invalid_argument(fmt::format("constraint axis {} is out of range for a weight of shape {}", value, shape.to_string()));
    const int normalized = value < 0 ? value + rank : value;
    for (int seen : axes)
      if (seen == normalized) throw std::invalid_argument(fmt::format("constraint axis {} is given twice", value));
    axes.push_back(normalized);
  }
  return axes;
}

ConstraintPtr make(std::string class_name, float min_value, float max_value, float rate, nlohmann::json axis) {
  auto c = std::make_shared<Constraint>();
  c->class_name = std::move(class_name);
  c->min_value = min_value;
  c->max_value = max_value;
  c->rate = rate;
  c->axis = has_axis(c->class_name) ? std::move(axis) : nlohmann::json(nullptr);
  return c;
}

}  // namespace

nlohmann::json Constraint::to_json() const {
  nlohmann::json config = nlohmann::json::object();
  if (class_name == "MaxNorm") config = {{"max_value", max_value}, {"axis", axis}};
  if (class_name == "UnitNorm") config = {{"axis", axis}};
  if (class_name == "MinMaxNorm") config = {{"min_value", min_value}, {"max_value", max_value}, {"rate", rate}, {"axis", axis}};
  return {{"module", "keras.constraints"}, {"class_name", class_name}, {"config", config}, {"registered_name", nullptr}};
}

Tensor Constraint::operator()(const Tensor& weight) const {
  if (class_name == "Constraint") return weight;
  if (class_name == "NonNeg") return ops::maximum(weight, 0.f);
  const Tensor norms = ops::sqrt(ops::sum(ops::square(weight), norm_axes(axis, weight.shape()), true));
  const Tensor offset = ops::add(norms, kEpsilon);
  if (class_name == "UnitNorm") return ops::divide(weight, offset);
  Tensor desired = ops::clip(norms, class_name == "MinMaxNorm" ? min_value : 0.f, max_value);
  if (class_name == "MinMaxNorm" && rate != 1.f) desired = ops::add(ops::multiply(desired, rate), ops::multiply(norms, 1.f - rate));
  return ops::multiply(weight, ops::divide(desired, offset));
}

namespace constraints {
ConstraintPtr MaxNorm(float max_value, nlohmann::json axis) { return make("MaxNorm", 0.f, max_value, 1.f, std::move(axis)); }
ConstraintPtr NonNeg() { return make("NonNeg", 0.f, 0.f, 1.f, nullptr); }
ConstraintPtr UnitNorm(nlohmann::json axis) { return make("UnitNorm", 0.f, 0.f, 1.f, std::move(axis)); }
ConstraintPtr MinMaxNorm(float min_value, float max_value, float rate, nlohmann::json axis) {
  return make("MinMaxNorm", min_value, max_value, rate, std::move(axis));
}
}  // namespace constraints

namespace {

float number(const nlohmann::json& config, const char* key, float fallback, const std::string& where) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  const auto& v = config.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
    throw std::invalid_argument(fmt::format("{}: {} must be a non-negative number, got {}", where, key, v.dump()));
  return v.get<float>();
}

nlohmann::json axis_of(const nlohmann::json& config, const std::string& where) {
  if (!config.contains("axis")) return 0;
  const auto& axis = config.at("axis");
  const bool ok = axis.is_null() || axis.is_number_integer() ||
                  (axis.is_array() && !axis.empty() && std::all_of(axis.begin(), axis.end(), [](const auto& a) { return a.is_number_integer(); }));
  if (!ok) throw std::invalid_argument(fmt::format("{}: axis must be an integer, a list of integers or null, got {}", where, axis.dump()));
  return axis;
}

// Keras 3's class names and their snake_case aliases, and tf.keras's older ones.
std::string canonical_name(const std::string& name) {
  if (name == "MaxNorm" || name == "max_norm" || name == "maxnorm") return "MaxNorm";
  if (name == "NonNeg" || name == "non_neg" || name == "nonneg") return "NonNeg";
  if (name == "UnitNorm" || name == "unit_norm" || name == "unitnorm") return "UnitNorm";
  if (name == "MinMaxNorm" || name == "min_max_norm") return "MinMaxNorm";
  if (name == "Constraint" || name == "constraint") return "Constraint";
  return {};
}

}  // namespace

ConstraintPtr constraint_from_json(const nlohmann::json& value, const std::string& where) {
  if (value.is_null()) return nullptr;
  const io::KerasObject parsed = io::parse_layer_attachment(value, where, "constraint");
  const std::string& name = parsed.name;
  const nlohmann::json& config = parsed.config;
  const std::string kind = canonical_name(name);
  if (kind.empty())
    throw std::invalid_argument(fmt::format("{}: unsupported constraint '{}' (MaxNorm, NonNeg, UnitNorm and MinMaxNorm are)", where, name));
  const std::vector<std::string> known = kind == "MaxNorm"      ? std::vector<std::string>{"max_value", "axis"}
                                         : kind == "UnitNorm"   ? std::vector<std::string>{"axis"}
                                         : kind == "MinMaxNorm" ? std::vector<std::string>{"min_value", "max_value", "rate", "axis"}
                                                                : std::vector<std::string>{};
  for (const auto& [key, v] : config.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw std::invalid_argument(fmt::format("{}: unknown {} config key '{}'", where, kind, key));
  if (kind == "MaxNorm") return constraints::MaxNorm(number(config, "max_value", 2.f, where), axis_of(config, where));
  if (kind == "UnitNorm") return constraints::UnitNorm(axis_of(config, where));
  if (kind == "MinMaxNorm") {
    const float lo = number(config, "min_value", 0.f, where), hi = number(config, "max_value", 1.f, where);
    const float rate = number(config, "rate", 1.f, where);
    if (lo > hi) throw std::invalid_argument(fmt::format("{}: min_value {} is above max_value {}", where, lo, hi));
    return constraints::MinMaxNorm(lo, hi, rate, axis_of(config, where));
  }
  return kind == "NonNeg" ? constraints::NonNeg() : make("Constraint", 0.f, 0.f, 1.f, nullptr);
}

}  // namespace strata
