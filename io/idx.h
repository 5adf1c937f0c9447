// Reader for IDX files (the MNIST family's format), gzipped or not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::io {

struct IdxArray {
  std::vector<std::int64_t> shape;  // e.g. (60000, 28, 28) for images, (60000,) for labels
  std::vector<std::uint8_t> data;   // unsigned bytes, as Fashion-MNIST stores them
};

// Reads an IDX file of unsigned bytes. Throws with the path and the reason on a missing, truncated or
// malformed file.
IdxArray read_idx(const std::string& path);

}  // namespace strata::io
