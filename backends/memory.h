// How much memory the process may still use, so that a model or batch too large for the machine fails
// with a message before it starts instead of being killed by the kernel part way through.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace strata {

// More memory was asked for than is available; the message says how much of each.
struct OutOfMemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct MemoryBudget {
  std::size_t bytes = 0;
  std::string source;  // what set the figure: "MemAvailable", "the cgroup's memory.max", ...
};

// Host memory still available to this process: the least of /proc/meminfo's MemAvailable and what the
// cgroup (v2 memory.max, or v1 limit_in_bytes) leaves. nullopt where neither can be read.
std::optional<MemoryBudget> host_memory_available();

// STRATA_MEMORY_LIMIT_MB, when set: a cap on what a backend may hold at once (for shared machines, and
// for fuzzing). nullopt when unset; a value that is not a positive integer throws.
std::optional<std::size_t> memory_limit_override();

// "3.6 TiB", "1.5 GiB", "12.0 MiB", "512 bytes".
std::string format_bytes(std::size_t bytes);

}  // namespace strata
