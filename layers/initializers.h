// Weight initializers with Keras's names, defaults and config keys.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "backends/shape.h"

namespace strata {

using Json = nlohmann::json;

class Initializer {
 public:
  virtual ~Initializer() = default;
  virtual std::string class_name() const = 0;
  virtual Json get_config() const = 0;
  // Fills `values` (row-major, `shape`) from `seed`; the same seed gives the same values everywhere.
  virtual void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const = 0;
  // {"module", "class_name", "config", "registered_name"} as Keras serializes it.
  Json to_json() const;
};

// Keras's fans: for a kernel (..., in, out) the receptive field is the product of the leading dimensions;
// with both input_axes and output_axes given (Keras 3.10+, for einsum kernels), the products of those axes.
struct Fans {
  double fan_in, fan_out;
};
using FanAxes = std::optional<std::vector<int>>;
Fans compute_fans(const Shape& shape, const FanAxes& input_axes = std::nullopt, const FanAxes& output_axes = std::nullopt);

namespace initializers {

struct Constant : Initializer {
  float value = 0.f;
  explicit Constant(float v = 0.f) : value(v) {}
  std::string class_name() const override { return "Constant"; }
  Json get_config() const override { return {{"value", value}}; }
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;
};
struct Zeros : Constant {
  Zeros() : Constant(0.f) {}
  std::string class_name() const override { return "Zeros"; }
  Json get_config() const override { return Json::object(); }
};
struct Ones : Constant {
  Ones() : Constant(1.f) {}
  std::string class_name() const override { return "Ones"; }
  Json get_config() const override { return Json::object(); }
};

struct RandomUniform : Initializer {
  float minval = -0.05f, maxval = 0.05f;
  RandomUniform(float lo = -0.05f, float hi = 0.05f) : minval(lo), maxval(hi) {}
  std::string class_name() const override { return "RandomUniform"; }
  Json get_config() const override { return {{"minval", minval}, {"maxval", maxval}, {"seed", nullptr}}; }
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;
};

struct RandomNormal : Initializer {
  float mean = 0.f, stddev = 0.05f;
  RandomNormal(float m = 0.f, float s = 0.05f) : mean(m), stddev(s) {}
  std::string class_name() const override { return "RandomNormal"; }
  Json get_config() const override { return {{"mean", mean}, {"stddev", stddev}, {"seed", nullptr}}; }
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;
};

struct TruncatedNormal : Initializer {
  float mean = 0.f, stddev = 0.05f;
  TruncatedNormal(float m = 0.f, float s = 0.05f) : mean(m), stddev(s) {}
  std::string class_name() const override { return "TruncatedNormal"; }
  Json get_config() const override { return {{"mean", mean}, {"stddev", stddev}, {"seed", nullptr}}; }
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;
};

// keras.initializers.VarianceScaling: scale / fan (fan_in, fan_out or fan_avg), drawn from a truncated
// normal, an untruncated normal or a uniform distribution of that variance.
struct VarianceScaling : Initializer {
  double scale = 1.0;
  std::string mode = "fan_in", distribution = "truncated_normal";
  FanAxes input_axes, output_axes;  // written to the config only when set, which older Keras versions lack
  VarianceScaling(double s = 1.0, std::string m = "fan_in", std::string d = "truncated_normal");
  std::string class_name() const override { return "VarianceScaling"; }
  Json get_config() const override;
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;

 protected:
  Json with_fan_axes(Json config) const;
};

#define STRATA_VARIANCE_SCALING(Name, scale, mode, dist)                       \
  struct Name : VarianceScaling {                                             \
    Name() : VarianceScaling(scale, mode, dist) {}                            \
    std::string class_name() const override { return #Name; }                 \
    Json get_config() const override { return with_fan_axes({{"seed", nullptr}}); } \
  };
STRATA_VARIANCE_SCALING(GlorotUniform, 1.0, "fan_avg", "uniform")
STRATA_VARIANCE_SCALING(GlorotNormal, 1.0, "fan_avg", "truncated_normal")
STRATA_VARIANCE_SCALING(HeUniform, 2.0, "fan_in", "uniform")
STRATA_VARIANCE_SCALING(HeNormal, 2.0, "fan_in", "truncated_normal")
STRATA_VARIANCE_SCALING(LecunUniform, 1.0, "fan_in", "uniform")
STRATA_VARIANCE_SCALING(LecunNormal, 1.0, "fan_in", "truncated_normal")
#undef STRATA_VARIANCE_SCALING

// A (semi-)orthogonal matrix from the QR decomposition of a normal one, as Keras's Orthogonal: the kernel
// is flattened to (prod(leading dims), last dim).
struct Orthogonal : Initializer {
  float gain = 1.f;
  explicit Orthogonal(float g = 1.f) : gain(g) {}
  std::string class_name() const override { return "Orthogonal"; }
  Json get_config() const override { return {{"gain", gain}, {"seed", nullptr}}; }
  void fill(std::span<float> values, const Shape& shape, std::uint64_t seed) const override;
};

}  // namespace initializers

// An initializer from a name ("glorot_uniform", "GlorotUniform", "zeros") or a Keras config object
// ({"class_name": "RandomNormal", "config": {"stddev": 0.1}}). Unknown names and keys throw, naming them.
std::shared_ptr<Initializer> get_initializer(const Json& identifier);

}  // namespace strata
