// Philox-4x32-10 counter-based generator (Salmon et al., SC'11), shared by every backend so that a seed
// and a counter produce the same bits on the CPU and on a GPU.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/backend.h"  // RandomKind
#include "backends/host_device.h"

namespace strata::philox {

struct Block {
  std::uint32_t v[4];
};

STRATA_HOST_DEVICE inline std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi) {
  const std::uint64_t p = std::uint64_t(a) * b;
  hi = std::uint32_t(p >> 32);
  return std::uint32_t(p);
}

// Ten rounds of Philox-4x32 on counter (c0..c3) with key (k0, k1).
STRATA_HOST_DEVICE inline Block generate(std::uint64_t seed, std::uint64_t offset, std::uint64_t index) {
  std::uint32_t c0 = std::uint32_t(index), c1 = std::uint32_t(index >> 32), c2 = std::uint32_t(offset),
                c3 = std::uint32_t(offset >> 32);
  std::uint32_t k0 = std::uint32_t(seed), k1 = std::uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(0xD2511F53u, c0, hi0);
    const std::uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, hi1);
    const std::uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Block{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits, exactly representable in float32.
STRATA_HOST_DEVICE inline float to_unit_float(std::uint32_t bits) { return float(bits >> 8) * (1.0f / 16777216.0f); }

// Standard normal from two uniform words (Box-Muller); `second` picks the sine branch.
STRATA_HOST_DEVICE inline float to_normal(std::uint32_t u0, std::uint32_t u1, bool second) {
  const float r = sqrtf(-2.0f * logf(1.0f - to_unit_float(u0)));  // 1 - u lies in (0, 1]: log is finite
  const float theta = 6.2831853071795864f * to_unit_float(u1);
  return second ? r * sinf(theta) : r * cosf(theta);
}

// The element i of a random stream: uniform bits come from word i % 4 of block i / 4; a normal sample uses
// the pair of words (2 * (i % 2), 2 * (i % 2) + 1) of block i / 2, sine or cosine by parity of i / 2.
STRATA_HOST_DEVICE inline float uniform_at(std::uint64_t seed, std::uint64_t offset, std::uint64_t i) {
  return to_unit_float(generate(seed, offset, i / 4).v[i % 4]);
}

STRATA_HOST_DEVICE inline float normal_at(std::uint64_t seed, std::uint64_t offset, std::uint64_t i) {
  const Block b = generate(seed, offset, i / 4);
  const unsigned pair = unsigned(i % 4) / 2;
  return to_normal(b.v[2 * pair], b.v[2 * pair + 1], (i % 2) != 0);
}

// Writes the elements of block `blk` of a random stream of `kind` (elements 4 * blk to 4 * blk + 3 that are
// below n), as Backend::random defines them; backends give each thread whole blocks.
STRATA_HOST_DEVICE inline void write_block(RandomKind kind, float* p, std::int64_t n, std::int64_t blk, std::uint64_t seed,
                                           std::uint64_t offset, float a, float b) {
  const Block bits = generate(seed, offset, std::uint64_t(blk));
  for (int j = 0; j < 4; ++j) {
    const std::int64_t i = blk * 4 + j;
    if (i >= n) break;
    switch (kind) {
      case RandomKind::uniform: p[i] = a + (b - a) * to_unit_float(bits.v[j]); break;
      case RandomKind::normal: {
        const int pair = j / 2;
        p[i] = a + b * to_normal(bits.v[2 * pair], bits.v[2 * pair + 1], (j % 2) != 0);
        break;
      }
      case RandomKind::keep_mask: p[i] = to_unit_float(bits.v[j]) < a ? 1.0f / a : 0.0f; break;
    }
  }
}

}  // namespace strata::philox
