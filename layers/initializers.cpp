#include "layers/initializers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <stdexcept>
#include <vector>

#include "io/keras_object.h"

namespace strata {

namespace {

// Platform-independent draws: std's distributions differ between standard libraries, these do not.
class HostRandom {
 public:
  explicit HostRandom(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }
  // Normal restricted to two standard deviations, by rejection (as truncated_normal).
  double truncated_normal() {
    for (;;) {
      const double x = normal();
      if (std::abs(x) <= 2.0) return x;
    }
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

std::string snake_to_camel(const std::string& name) {
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? char(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

}  // namespace

Json Initializer::to_json() const {
  return {{"module", "keras.initializers"}, {"class_name", class_name()}, {"config", get_config()},
          {"registered_name", nullptr}};
}

Fans compute_fans(const Shape& shape, const FanAxes& input_axes, const FanAxes& output_axes) {
  if (input_axes && output_axes) {
    auto product = [&](const std::vector<int>& axes) {
      double n = 1;
      for (int axis : axes) n *= double(shape[shape.normalize_axis(axis)]);
      return n;
    };
    return {product(*input_axes), product(*output_axes)};
  }
  if (shape.rank() < 1) return {1, 1};
  if (shape.rank() == 1) return {double(shape[0]), double(shape[0])};
  double receptive = 1;
  for (int i = 0; i + 2 < shape.rank(); ++i) receptive *= double(shape[i]);
  return {double(shape[shape.rank() - 2]) * receptive, double(shape[shape.rank() - 1]) * receptive};
}

namespace initializers {

void Constant::fill(std::span<float> values, const Shape&, std::uint64_t) const {
  for (float& v : values) v = value;
}

void RandomUniform::fill(std::span<float> values, const Shape&, std::uint64_t seed) const {
  HostRandom rng(seed);
  for (float& v : values) v = float(minval + (maxval - minval) * rng.uniform());
}

void RandomNormal::fill(std::span<float> values, const Shape&, std::uint64_t seed) const {
  HostRandom rng(seed);
  for (float& v : values) v = float(mean + stddev * rng.normal());
}

void TruncatedNormal::fill(std::span<float> values, const Shape&, std::uint64_t seed) const {
  HostRandom rng(seed);
  for (float& v : values) v = float(mean + stddev * rng.truncated_normal());
}

VarianceScaling::VarianceScaling(double s, std::string m, std::string d)
    : scale(s), mode(std::move(m)), distribution(std::move(d)) {
  if (!(scale > 0)) throw std::invalid_argument(fmt::format("VarianceScaling: scale must be positive, got {}", scale));
  if (mode != "fan_in" && mode != "fan_out" && mode != "fan_avg")
    throw std::invalid_argument(fmt::format("VarianceScaling: mode must be fan_in, fan_out or fan_avg, got '{}'", mode));
  if (distribution != "truncated_normal" && distribution != "untruncated_normal" && distribution != "uniform")
    throw std::invalid_argument(fmt::format(
        "VarianceScaling: distribution must be truncated_normal, untruncated_normal or uniform, got '{}'", distribution));
}

Json VarianceScaling::get_config() const {
  return with_fan_axes({{"scale", scale}, {"mode", mode}, {"distribution", distribution}, {"seed", nullptr}});
}

Json VarianceScaling::with_fan_axes(Json config) const {
  if (input_axes) config["input_axes"] = *input_axes;
  if (output_axes) config["output_axes"] = *output_axes;
  return config;
}

void VarianceScaling::fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const {
  const Fans fans = compute_fans(shape, input_axes, output_axes);
  const double fan = mode == "fan_in" ? fans.fan_in : mode == "fan_out" ? fans.fan_out : (fans.fan_in + fans.fan_out) / 2;
  const double variance = scale / std::max(1.0, fan);
  HostRandom rng(seed);
  if (distribution == "uniform") {
    const double limit = std::sqrt(3.0 * variance);
    for (float& v : values) v = float(-limit + 2 * limit * rng.uniform());
  } else if (distribution == "untruncated_normal") {
    const double stddev = std::sqrt(variance);
    for (float& v : values) v = float(stddev * rng.normal());
  } else {
    // The standard deviation of a unit normal truncated to [-2, 2] is 0.8796...; divide it out.
    const double stddev = std::sqrt(variance) / 0.87962566103423978;
    for (float& v : values) v = float(stddev * rng.truncated_normal());
  }
}

void Orthogonal::fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const {
  if (shape.rank() < 2)
    throw std::invalid_argument(fmt::format("Orthogonal: the shape must have rank 2 or more, got {}", shape.to_string()));
  const std::int64_t cols = shape[shape.rank() - 1], rows = shape.numel() / cols;
  const std::int64_t tall = std::max(rows, cols), wide = std::min(rows, cols);
  // Gram-Schmidt on the columns of a tall normal matrix: Q with a positive-diagonal R, which is what
  // Keras obtains from QR followed by multiplying by sign(diag(R)).
  HostRandom rng(seed);
  std::vector<double> a(static_cast<std::size_t>(tall * wide));
  for (double& x : a) x = rng.normal();
  auto at = [&](std::int64_t r, std::int64_t c) -> double& { return a[std::size_t(r * wide + c)]; };
  for (std::int64_t c = 0; c < wide; ++c) {
    for (std::int64_t p = 0; p < c; ++p) {
      double dot = 0;
      for (std::int64_t r = 0; r < tall; ++r) dot += at(r, c) * at(r, p);
      for (std::int64_t r = 0; r < tall; ++r) at(r, c) -= dot * at(r, p);
    }
    double norm = 0;
    for (std::int64_t r = 0; r < tall; ++r) norm += at(r, c) * at(r, c);
    norm = std::sqrt(norm);
    for (std::int64_t r = 0; r < tall; ++r) at(r, c) /= norm;
  }
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      values[std::size_t(r * cols + c)] = float(gain * (rows >= cols ? at(r, c) : at(c, r)));
}

}  // namespace initializers

std::shared_ptr<Initializer> get_initializer(const Json& identifier) {
  const io::KerasObject parsed = io::parse_keras_object(identifier, "initializer");
  const std::string& name = parsed.name;
  const Json& config = parsed.config;
  // Keras's short aliases "uniform" and "normal" name the random initializers.
  const std::string cls = name == "uniform" ? "RandomUniform"
                          : name == "normal" ? "RandomNormal"
                          : name.find('_') != std::string::npos || std::islower(static_cast<unsigned char>(name[0])) ? snake_to_camel(name)
                                                                                                                      : name;
  auto number = [&](const char* key, double fallback) {
    if (!config.contains(key) || config.at(key).is_null()) return fallback;
    if (!config.at(key).is_number())
      throw std::invalid_argument(fmt::format("initializer {}: '{}' must be a number, got {}", cls, key, config.at(key).dump()));
    return config.at(key).get<double>();
  };
  auto check_keys = [&](std::initializer_list<const char*> allowed) {
    for (const auto& [key, value] : config.items()) {
      bool ok = key == "seed";
      for (const char* a : allowed) ok = ok || key == a;
      if (!ok) throw std::invalid_argument(fmt::format("initializer {}: unknown config key '{}'", cls, key));
    }
  };
  using namespace initializers;
  if (cls == "Zeros") return check_keys({}), std::make_shared<Zeros>();
  if (cls == "Ones") return check_keys({}), std::make_shared<Ones>();
  if (cls == "Constant") return check_keys({"value"}), std::make_shared<Constant>(float(number("value", 0)));
  if (cls == "RandomUniform")
    return check_keys({"minval", "maxval"}), std::make_shared<RandomUniform>(float(number("minval", -0.05)), float(number("maxval", 0.05)));
  if (cls == "RandomNormal")
    return check_keys({"mean", "stddev"}), std::make_shared<RandomNormal>(float(number("mean", 0)), float(number("stddev", 0.05)));
  if (cls == "TruncatedNormal")
    return check_keys({"mean", "stddev"}), std::make_shared<TruncatedNormal>(float(number("mean", 0)), float(number("stddev", 0.05)));
  // Keras 3.10+ writes input_axes/output_axes (einsum kernels) for the variance-scaling family.
  auto with_axes = [&](std::shared_ptr<VarianceScaling> init) -> std::shared_ptr<Initializer> {
    for (const char* k : {"input_axes", "output_axes"}) {
      if (!config.contains(k) || config.at(k).is_null()) continue;
      const Json& axes = config.at(k);
      if (!axes.is_array() || !std::all_of(axes.begin(), axes.end(), [](const Json& a) { return a.is_number_integer(); }))
        throw std::invalid_argument(fmt::format("initializer {}: '{}' must be a list of integers, got {}", cls, k, axes.dump()));
      (std::string(k) == "input_axes" ? init->input_axes : init->output_axes) = axes.get<std::vector<int>>();
    }
    return init;
  };
  if (cls == "VarianceScaling") {
    check_keys({"scale", "mode", "distribution", "input_axes", "output_axes"});
    std::string distribution = config.value("distribution", std::string("truncated_normal"));
    if (distribution == "normal") distribution = "truncated_normal";  // the older Keras spelling
    return with_axes(std::make_shared<VarianceScaling>(number("scale", 1.0), config.value("mode", std::string("fan_in")), distribution));
  }
  if (cls == "Orthogonal") return check_keys({"gain"}), std::make_shared<Orthogonal>(float(number("gain", 1)));
  auto scaled = [&](auto init) -> std::shared_ptr<Initializer> {
    check_keys({"input_axes", "output_axes"});
    return with_axes(std::make_shared<decltype(init)>(init));
  };
  if (cls == "GlorotUniform") return scaled(GlorotUniform{});
  if (cls == "GlorotNormal") return scaled(GlorotNormal{});
  if (cls == "HeUniform") return scaled(HeUniform{});
  if (cls == "HeNormal") return scaled(HeNormal{});
  if (cls == "LecunUniform") return scaled(LecunUniform{});
  if (cls == "LecunNormal") return scaled(LecunNormal{});
  throw std::invalid_argument(fmt::format(
      "unknown initializer '{}' (known: zeros, ones, constant, random_uniform, random_normal, truncated_normal, "
      "variance_scaling, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, orthogonal)",
      name));
}

}  // namespace strata
