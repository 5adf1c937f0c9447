// Element types a tensor can hold, and the Scalar value type used wherever a single number crosses the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

enum class DType : std::uint8_t { float32, float16, bfloat16, int32, int64, uint8 };

std::size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
// The dtype named `name` ("float32", ...); throws with the list for an unknown name.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// One number of any supported type; replaces per-type overloads in every interface.
class Scalar {
 public:
  Scalar() = default;
  Scalar(double v) : dtype_(DType::float32), f_(v) {}                 // NOLINT: implicit on purpose
  Scalar(float v) : dtype_(DType::float32), f_(v) {}                  // NOLINT
  Scalar(int v) : dtype_(DType::int32), i_(v), f_(v) {}               // NOLINT
  Scalar(std::int64_t v) : dtype_(DType::int64), i_(v), f_(double(v)) {}  // NOLINT

  DType dtype() const { return dtype_; }
  double to_double() const { return f_; }
  std::int64_t to_int() const { return is_floating(dtype_) ? std::int64_t(f_) : i_; }

 private:
  DType dtype_ = DType::float32;
  std::int64_t i_ = 0;
  double f_ = 0.0;
};

}  // namespace strata
