#include "layers/regularizers.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "graph/ops.h"
#include "io/keras_object.h"

namespace strata {

nlohmann::json Regularizer::to_json() const {
  nlohmann::json config = nlohmann::json::object();
  if (class_name != "L2") config["l1"] = l1;
  if (class_name != "L1") config["l2"] = l2;
  return {{"module", "keras.regularizers"}, {"class_name", class_name}, {"config", config}, {"registered_name", nullptr}};
}

namespace {

// l1 * reduce(|x|) + l2 * reduce(x^2), the reduction a function of the elementwise terms.
template <class Reduce>
Tensor weighted_sum(const Regularizer& r, const Tensor& x, Reduce reduce) {
  Tensor total;
  if (r.l1 != 0.f) total = ops::multiply(reduce(ops::abs(x)), r.l1);
  if (r.l2 != 0.f) {
    const Tensor squares = ops::multiply(reduce(ops::square(x)), r.l2);
    total = total.valid() ? ops::add(total, squares) : squares;
  }
  return total.valid() ? total : ops::multiply(ops::sum(x), 0.f);
}

}  // namespace

Tensor Regularizer::penalty(const Tensor& weight) const {
  return weighted_sum(*this, weight, [](const Tensor& t) { return ops::sum(t); });
}

Tensor Regularizer::activity_penalty(const Tensor& output) const {
  if (output.rank() == 0) return penalty(output);
  // sum(f(x)) / batch = sum over the other axes of the mean over the batch axis.
  return weighted_sum(*this, output, [](const Tensor& t) { return ops::sum(ops::mean(t, {0})); });
}

namespace regularizers {
Regularizer L1(float l1) { return {"L1", l1, 0.f}; }
Regularizer L2(float l2) { return {"L2", 0.f, l2}; }
Regularizer L1L2(float l1, float l2) { return {"L1L2", l1, l2}; }
}  // namespace regularizers

namespace {

float factor(const nlohmann::json& config, const char* key, float fallback, const std::string& where) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  const auto& v = config.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
    throw std::invalid_argument(fmt::format("{}: {} must be a non-negative number, got {}", where, key, v.dump()));
  return v.get<float>();
}

}  // namespace

std::optional<Regularizer> regularizer_from_json(const nlohmann::json& value, const std::string& where) {
  if (value.is_null()) return std::nullopt;
  const io::KerasObject parsed = io::parse_layer_attachment(value, where, "regularizer");
  const std::string& name = parsed.name;
  const nlohmann::json& config = parsed.config;
  for (const auto& [key, v] : config.items())
    if (key != "l1" && key != "l2") throw std::invalid_argument(fmt::format("{}: unknown regularizer config key '{}'", where, key));
  if (name == "L1" || name == "l1") {
    if (config.contains("l2")) throw std::invalid_argument(fmt::format("{}: L1 takes l1 only", where));
    return regularizers::L1(factor(config, "l1", 0.01f, where));
  }
  if (name == "L2" || name == "l2") {
    if (config.contains("l1")) throw std::invalid_argument(fmt::format("{}: L2 takes l2 only", where));
    return regularizers::L2(factor(config, "l2", 0.01f, where));
  }
  if (name == "L1L2" || name == "l1l2" || name == "l1_l2") return regularizers::L1L2(factor(config, "l1", 0.f, where), factor(config, "l2", 0.f, where));
  throw std::invalid_argument(fmt::format("{}: unsupported regularizer '{}' (L1, L2 and L1L2 are)", where, name));
}

}  // namespace strata
