// Fixed-capacity tensor shape; -1 marks a dimension unknown until run time (the batch).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace strata {

inline constexpr int kMaxRank = 8;
inline constexpr std::int64_t kUnknownDim = -1;

// Stored inline so that kernels and plans pass shapes around without touching the heap.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);
  static Shape scalar() { return Shape(); }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[std::size_t(i)]; }
  std::int64_t& operator[](int i) { return dims_[std::size_t(i)]; }
  // Negative axes count from the end, as in Keras.
  std::int64_t dim(int axis) const { return dims_[std::size_t(normalize_axis(axis))]; }
  int normalize_axis(int axis) const;

  void push_back(std::int64_t d);
  bool is_fully_known() const;
  // Product of all dimensions; -1 if any is unknown.
  std::int64_t numel() const;
  std::vector<std::int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + rank_}; }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }

  // Keras's spelling: (None, 784).
  std::string to_string() const;

  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Row-major element strides of a contiguous tensor of this shape.
std::array<std::int64_t, kMaxRank> contiguous_strides(const Shape& shape);

}  // namespace strata
