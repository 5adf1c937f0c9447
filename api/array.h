// Array: a host n-d array, what fit/evaluate/predict take and return. It keeps its stored dtype (uint8
// images stay bytes) and converts only the rows of a batch as they are drawn.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace strata {

class Array {
 public:
  Array() = default;
  // Zero-filled.
  Array(Shape shape, DType dtype = DType::float32);
  static Array from_floats(std::vector<float> values, Shape shape);
  static Array from_ints(std::vector<std::int32_t> values, Shape shape);
  static Array from_bytes(std::vector<std::uint8_t> values, Shape shape);

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  std::int64_t size() const { return shape_.numel(); }
  std::int64_t rows() const { return shape_.rank() > 0 ? shape_[0] : 0; }
  bool empty() const { return !storage_; }
  void* data() { return storage_ ? storage_->data() : nullptr; }
  const void* data() const { return storage_ ? storage_->data() : nullptr; }
  template <class T> std::span<T> values() { return {static_cast<T*>(data()), std::size_t(size())}; }
  template <class T> std::span<const T> values() const { return {static_cast<const T*>(data()), std::size_t(size())}; }

  // Lazily scaled: the same storage, multiplied by `factor` whenever it is converted to float32.
  // `images / 255.f` keeps the images as bytes.
  Array scaled(float factor) const;
  float scale() const { return scale_; }

  // The element values converted to float32, scale applied.
  std::vector<float> to_floats() const;
  // The same storage seen with another shape of the same size (np.reshape / expand_dims).
  Array reshaped(Shape shape) const;
  // Rows [rows[i]] converted to `dtype` (float32, int32 or int64) into `out`, which holds rows.size() rows.
  void gather_rows(std::span<const std::int64_t> rows, DType dtype, void* out) const;
  // Rows [begin, begin + n) as a new Array of the same dtype (sharing nothing).
  Array slice_rows(std::int64_t begin, std::int64_t n) const;

 private:
  Shape shape_;
  DType dtype_ = DType::float32;
  float scale_ = 1.f;
  std::shared_ptr<std::vector<std::byte>> storage_;
};

inline Array operator/(const Array& a, float divisor) { return a.scaled(a.scale() / divisor); }
inline Array operator*(const Array& a, float factor) { return a.scaled(a.scale() * factor); }

}  // namespace strata
