// Buffer planning: places every intermediate in one arena so that buffers whose lifetimes do not overlap
// share memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata {

struct BufferRequest {
  std::size_t bytes = 0;
  int first_step = 0;  // written here (or before the first step: -1)
  int last_step = 0;   // last read here, inclusive
};

struct BufferPlan {
  std::vector<std::size_t> offsets;  // per request
  std::size_t arena_bytes = 0;       // peak: what the arena must hold
  std::size_t total_bytes = 0;       // what one buffer per request would take
};

// Greedy by size: the largest buffers are placed first, each at the lowest offset that does not collide
// with an already placed buffer whose lifetime overlaps. Offsets are multiples of `alignment`.
BufferPlan plan_buffers(const std::vector<BufferRequest>& requests, std::size_t alignment = 64);

}  // namespace strata
