#include "backends/dtype.h"

#include <stdexcept>

namespace strata {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::float32: return 4;
    case DType::float16: return 2;
    case DType::bfloat16: return 2;
    case DType::int32: return 4;
    case DType::int64: return 8;
    case DType::uint8: return 1;
  }
  throw std::invalid_argument("dtype_size: unknown dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::uint8: return "uint8";
  }
  return "unknown";
}

DType parse_dtype(std::string_view name) {
  for (DType d : {DType::float32, DType::float16, DType::bfloat16, DType::int32, DType::int64, DType::uint8})
    if (dtype_name(d) == name) return d;
  throw std::invalid_argument("unknown dtype '" + std::string(name) +
                              "' (known: float32, float16, bfloat16, int32, int64, uint8)");
}

bool is_floating(DType dtype) {
  return dtype == DType::float32 || dtype == DType::float16 || dtype == DType::bfloat16;
}

}  // namespace strata
