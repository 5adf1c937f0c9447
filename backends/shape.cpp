#include "backends/shape.h"

#include <fmt/format.h>

#include <stdexcept>

namespace strata {

Shape::Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > std::size_t(kMaxRank)) {
    throw std::invalid_argument(fmt::format("shape of rank {} exceeds the maximum rank {}", dims.size(), kMaxRank));
  }
  for (auto d : dims) push_back(d);
}

int Shape::normalize_axis(int axis) const {
  const int a = axis < 0 ? axis + rank_ : axis;
  if (a < 0 || a >= rank_) {
    throw std::out_of_range(fmt::format("axis {} is out of range for a tensor of shape {}", axis, to_string()));
  }
  return a;
}

void Shape::push_back(std::int64_t d) {
  if (rank_ == kMaxRank) throw std::invalid_argument(fmt::format("shape exceeds the maximum rank {}", kMaxRank));
  dims_[std::size_t(rank_++)] = d;
}

bool Shape::is_fully_known() const {
  for (int i = 0; i < rank_; ++i)
    if (dims_[std::size_t(i)] < 0) return false;
  return true;
}

std::int64_t Shape::numel() const {
  // Checked: shapes come from files and configs, and a wrapped count would allocate too little.
  constexpr std::int64_t kMaxElements = std::int64_t(1) << 60;  // its bytes still fit in 64 bits
  bool empty = false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[std::size_t(i)] < 0) return -1;
    empty = empty || dims_[std::size_t(i)] == 0;
  }
  if (empty) return 0;
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) {
    const std::int64_t d = dims_[std::size_t(i)];
    if (n > kMaxElements / d) throw std::length_error(fmt::format("shape {} has more elements than any machine can hold", to_string()));
    n *= d;
  }
  return n;
}

std::string Shape::to_string() const {
  std::string s = "(";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += dims_[std::size_t(i)] < 0 ? std::string("None") : std::to_string(dims_[std::size_t(i)]);
  }
  if (rank_ == 1) s += ",";
  return s + ")";
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.rank_ != b.rank_) return false;
  for (int i = 0; i < a.rank_; ++i)
    if (a.dims_[std::size_t(i)] != b.dims_[std::size_t(i)]) return false;
  return true;
}

std::array<std::int64_t, kMaxRank> contiguous_strides(const Shape& shape) {
  std::array<std::int64_t, kMaxRank> strides{};
  std::int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[std::size_t(i)] = s;
    s *= shape[i];
  }
  return strides;
}

}  // namespace strata
