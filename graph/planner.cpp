#include "graph/planner.h"

#include <algorithm>
#include <numeric>

namespace strata {

BufferPlan plan_buffers(const std::vector<BufferRequest>& requests, std::size_t alignment) {
  BufferPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  auto rounded = [&](std::size_t b) { return (std::max<std::size_t>(b, 1) + alignment - 1) / alignment * alignment; };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return requests[a].bytes > requests[b].bytes; });

  struct Placed {
    std::size_t offset, end;
    int first, last;
  };
  std::vector<Placed> placed;
  std::vector<std::pair<std::size_t, std::size_t>> busy;
  for (std::size_t idx : order) {
    const BufferRequest& r = requests[idx];
    const std::size_t size = rounded(r.bytes);
    plan.total_bytes += size;
    busy.clear();
    for (const Placed& p : placed)
      if (p.first <= r.last_step && r.first_step <= p.last) busy.emplace_back(p.offset, p.end);
    std::sort(busy.begin(), busy.end());
    // The first gap between busy ranges that fits.
    std::size_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (begin >= offset + size) break;
      offset = std::max(offset, end);
    }
    plan.offsets[idx] = offset;
    placed.push_back(Placed{offset, offset + size, r.first_step, r.last_step});
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
  }
  return plan;
}

}  // namespace strata
