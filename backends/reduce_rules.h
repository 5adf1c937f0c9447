// The element rules of max/min reductions and argmax, shared by every backend so that they agree on
// NaN and on ties.
#pragma once

#include <cstdint>

#include "backends/host_device.h"

namespace strata {

// A NaN anywhere makes the maximum (minimum) NaN, as numpy and JAX: std::max would drop a NaN that
// comes after a number.
template <class T>
STRATA_HOST_DEVICE inline T max_keeping_nan(T acc, T v) {
  return v > acc || v != v ? v : acc;
}
template <class T>
STRATA_HOST_DEVICE inline T min_keeping_nan(T acc, T v) {
  return v < acc || v != v ? v : acc;
}

// Index of the largest of len values stride apart: the first NaN wins, then the first of equal maxima,
// as numpy.argmax.
STRATA_HOST_DEVICE inline std::int64_t argmax_strided(const float* p, std::int64_t len, std::int64_t stride) {
  std::int64_t best = 0;
  float best_v = p[0];
  for (std::int64_t k = 1; k < len && best_v == best_v; ++k) {
    const float v = p[k * stride];
    if (v > best_v || v != v) {
      best_v = v;
      best = k;
    }
  }
  return best;
}

}  // namespace strata
