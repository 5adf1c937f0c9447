// Keras's padding/cropping argument for ZeroPadding and Cropping layers: one number for every side;
// for 2-D, (a, b) means a on both sides of the height and b on both sides of the width, and
// ((top, bottom), (left, right)) sets each side; for 1-D, (left, right).
#pragma once

#include <array>
#include <initializer_list>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata {

class SpatialPairs {
 public:
  SpatialPairs(int v) : flat_{v} {}                                          // NOLINT: implicit on purpose
  SpatialPairs(std::initializer_list<int> v) : flat_(v) {}                   // NOLINT
  SpatialPairs(std::initializer_list<std::initializer_list<int>> v);        // NOLINT
  // (before, after) for each of `rank` spatial axes; throws naming `what` on a malformed or negative value.
  std::vector<std::array<int, 2>> expand(int rank, const char* what) const;
  // Reads a config value: a number, a flat list or a list of pairs.
  static SpatialPairs from_json(const nlohmann::json& value, const char* what);

 private:
  SpatialPairs() = default;
  std::vector<int> flat_;
  std::vector<std::vector<int>> nested_;
};

}  // namespace strata
