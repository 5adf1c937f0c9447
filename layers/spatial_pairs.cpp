#include "layers/spatial_pairs.h"

#include <fmt/format.h>

#include <stdexcept>

namespace strata {

SpatialPairs::SpatialPairs(std::initializer_list<std::initializer_list<int>> v) {
  for (const auto& pair : v) nested_.emplace_back(pair);
}

std::vector<std::array<int, 2>> SpatialPairs::expand(int rank, const char* what) const {
  std::vector<std::array<int, 2>> out;
  if (!nested_.empty()) {
    if (int(nested_.size()) != rank) throw std::invalid_argument(fmt::format("{} needs {} (before, after) pairs, got {}", what, rank, nested_.size()));
    for (const auto& pair : nested_) {
      if (pair.size() != 2) throw std::invalid_argument(fmt::format("{}: each pair needs 2 numbers, got {}", what, pair.size()));
      out.push_back({pair[0], pair[1]});
    }
  } else if (flat_.size() == 1) {
    out.assign(std::size_t(rank), {flat_[0], flat_[0]});
  } else if (flat_.size() == 2 && rank == 1) {
    out.push_back({flat_[0], flat_[1]});
  } else if (int(flat_.size()) == rank) {
    for (int v : flat_) out.push_back({v, v});
  } else {
    throw std::invalid_argument(fmt::format("{} must be a number, {} numbers or {} pairs", what, rank == 1 ? 2 : rank, rank));
  }
  for (const auto& [before, after] : out)
    if (before < 0 || after < 0) throw std::invalid_argument(fmt::format("{} must not be negative, got ({}, {})", what, before, after));
  return out;
}

SpatialPairs SpatialPairs::from_json(const nlohmann::json& v, const char* what) {
  SpatialPairs p;
  auto integer = [&](const nlohmann::json& x) {
    if (!x.is_number_integer()) throw std::invalid_argument(fmt::format("'{}' must hold integers, got {}", what, v.dump()));
    return x.get<int>();
  };
  if (v.is_number_integer()) {
    p.flat_ = {v.get<int>()};
  } else if (v.is_array() && !v.empty() && v[0].is_array()) {
    for (const auto& pair : v) {
      if (!pair.is_array()) throw std::invalid_argument(fmt::format("'{}' mixes numbers and pairs: {}", what, v.dump()));
      std::vector<int> values;
      for (const auto& x : pair) values.push_back(integer(x));
      p.nested_.push_back(values);
    }
  } else if (v.is_array()) {
    for (const auto& x : v) p.flat_.push_back(integer(x));
  } else {
    throw std::invalid_argument(fmt::format("'{}' must be a number or a list, got {}", what, v.dump()));
  }
  return p;
}

}  // namespace strata
