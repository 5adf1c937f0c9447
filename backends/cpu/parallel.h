// parallel_for over the OpenMP pool (included by cpu_backend.h only).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace strata::cpu {

// Below this many cheap operations, waking the pool costs more than it saves.
inline constexpr std::int64_t kMinParallelWork = 1 << 15;

template <class F>
void parallel_for(std::int64_t n, std::int64_t work_per_item, F&& f) {
  if (n <= 0) return;
  const std::int64_t work = n * std::max<std::int64_t>(work_per_item, 1);
  const int threads = work < kMinParallelWork ? 1 : int(std::min<std::int64_t>(num_threads(), n));
  if (threads <= 1 || omp_in_parallel()) {
    f(std::int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    if (begin < end) f(begin, end);
  }
}

}  // namespace strata::cpu
