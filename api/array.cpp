#include "api/array.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>
#include <type_traits>

namespace strata {

namespace {

template <class Out>
void convert_row(const std::byte* src, DType dtype, std::int64_t n, float scale, Out* out) {
  switch (dtype) {
    case DType::float32: {
      const float* s = reinterpret_cast<const float*>(src);
      for (std::int64_t i = 0; i < n; ++i) out[i] = Out(s[i] * scale);
      return;
    }
    case DType::uint8: {
      const auto* s = reinterpret_cast<const std::uint8_t*>(src);
      for (std::int64_t i = 0; i < n; ++i) out[i] = Out(float(s[i]) * scale);
      return;
    }
    case DType::int32: {
      const auto* s = reinterpret_cast<const std::int32_t*>(src);
      // Integers to integers exactly (token ids past 2^24 would not survive a float).
      if (std::is_integral_v<Out> && scale == 1.f) for (std::int64_t i = 0; i < n; ++i) out[i] = Out(s[i]);
      else for (std::int64_t i = 0; i < n; ++i) out[i] = Out(float(s[i]) * scale);
      return;
    }
    case DType::int64: {
      const auto* s = reinterpret_cast<const std::int64_t*>(src);
      if (std::is_integral_v<Out> && scale == 1.f) for (std::int64_t i = 0; i < n; ++i) out[i] = Out(s[i]);
      else for (std::int64_t i = 0; i < n; ++i) out[i] = Out(float(s[i]) * scale);
      return;
    }
    default: throw std::invalid_argument(fmt::format("Array: cannot convert {} values", dtype_name(dtype)));
  }
}

}  // namespace

Array::Array(Shape shape, DType dtype)
    : shape_(shape), dtype_(dtype),
      storage_(std::make_shared<std::vector<std::byte>>(std::size_t(shape.numel()) * dtype_size(dtype))) {
  if (!shape.is_fully_known()) throw std::invalid_argument(fmt::format("Array: shape {} must be fully known", shape.to_string()));
}

Array Array::from_floats(std::vector<float> values, Shape shape) {
  if (std::int64_t(values.size()) != shape.numel())
    throw std::invalid_argument(fmt::format("Array: {} values do not fill shape {}", values.size(), shape.to_string()));
  Array a(shape, DType::float32);
  if (!values.empty()) std::memcpy(a.data(), values.data(), values.size() * sizeof(float));  // empty: data() may be null
  return a;
}

Array Array::from_ints(std::vector<std::int32_t> values, Shape shape) {
  if (std::int64_t(values.size()) != shape.numel())
    throw std::invalid_argument(fmt::format("Array: {} values do not fill shape {}", values.size(), shape.to_string()));
  Array a(shape, DType::int32);
  if (!values.empty()) std::memcpy(a.data(), values.data(), values.size() * sizeof(std::int32_t));
  return a;
}

Array Array::from_bytes(std::vector<std::uint8_t> values, Shape shape) {
  if (std::int64_t(values.size()) != shape.numel())
    throw std::invalid_argument(fmt::format("Array: {} values do not fill shape {}", values.size(), shape.to_string()));
  Array a(shape, DType::uint8);
  if (!values.empty()) std::memcpy(a.data(), values.data(), values.size());
  return a;
}

Array Array::reshaped(Shape shape) const {
  if (!shape.is_fully_known() || shape.numel() != size())
    throw std::invalid_argument(fmt::format("Array: cannot reshape {} to {}", shape_.to_string(), shape.to_string()));
  Array a = *this;
  a.shape_ = shape;
  return a;
}

Array Array::scaled(float factor) const {
  Array a = *this;
  a.scale_ = factor;
  return a;
}

std::vector<float> Array::to_floats() const {
  std::vector<float> out(static_cast<std::size_t>(size()));
  if (size() > 0) convert_row(storage_->data(), dtype_, size(), scale_, out.data());
  return out;
}

void Array::gather_rows(std::span<const std::int64_t> rows, DType dtype, void* out) const {
  const std::int64_t per_row = shape_.rank() > 0 && shape_[0] > 0 ? size() / shape_[0] : 0;
  const std::size_t row_bytes = std::size_t(per_row) * dtype_size(dtype_);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::int64_t r = rows[i];
    if (r < 0 || r >= this->rows()) throw std::out_of_range(fmt::format("Array: row {} of {}", r, this->rows()));
    const std::byte* src = storage_->data() + std::size_t(r) * row_bytes;
    if (dtype == DType::float32) convert_row(src, dtype_, per_row, scale_, static_cast<float*>(out) + i * std::size_t(per_row));
    else if (dtype == DType::int32) convert_row(src, dtype_, per_row, scale_, static_cast<std::int32_t*>(out) + i * std::size_t(per_row));
    else if (dtype == DType::int64) convert_row(src, dtype_, per_row, scale_, static_cast<std::int64_t*>(out) + i * std::size_t(per_row));
    else throw std::invalid_argument(fmt::format("Array: cannot convert to {}", dtype_name(dtype)));
  }
}

Array Array::slice_rows(std::int64_t begin, std::int64_t n) const {
  if (begin < 0 || n < 0 || begin + n > rows())
    throw std::out_of_range(fmt::format("Array: rows [{}, {}) of {}", begin, begin + n, rows()));
  Shape s = shape_;
  s[0] = n;
  Array out(s, dtype_);
  const std::size_t row_bytes = rows() > 0 ? storage_->size() / std::size_t(rows()) : 0;
  if (n > 0) std::memcpy(out.data(), storage_->data() + std::size_t(begin) * row_bytes, std::size_t(n) * row_bytes);
  out.scale_ = scale_;
  return out;
}

}  // namespace strata
