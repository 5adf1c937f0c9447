#include "backends/memory.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace strata {

namespace {

// A number of bytes from a one-line file ("max" or unreadable: nullopt).
std::optional<std::size_t> read_bytes_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::nullopt;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0') return std::nullopt;
  return static_cast<std::size_t>(v);
}

std::optional<std::size_t> mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    unsigned long long kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return static_cast<std::size_t>(kib) * 1024;
  }
  return std::nullopt;
}

// The cgroup this process is in ("0::/path" for v2; the memory controller's line for v1).
std::optional<MemoryBudget> cgroup_remaining() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      const std::string dir = "/sys/fs/cgroup" + (path == "/" ? std::string() : path);
      const auto max = read_bytes_file(dir + "/memory.max"), current = read_bytes_file(dir + "/memory.current");
      if (max && current) return MemoryBudget{*max > *current ? *max - *current : 0, "the cgroup's memory.max"};
    } else if (controllers.find("memory") != std::string::npos) {
      for (const std::string& dir : {"/sys/fs/cgroup/memory" + path, std::string("/sys/fs/cgroup/memory")}) {
        const auto limit = read_bytes_file(dir + "/memory.limit_in_bytes"), usage = read_bytes_file(dir + "/memory.usage_in_bytes");
        // v1 reports "no limit" as a huge number rather than "max".
        if (limit && usage && *limit < (std::size_t(1) << 60))
          return MemoryBudget{*limit > *usage ? *limit - *usage : 0, "the cgroup's memory.limit_in_bytes"};
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<MemoryBudget> host_memory_available() {
  std::optional<MemoryBudget> budget;
  if (const auto available = mem_available()) budget = MemoryBudget{*available, "MemAvailable in /proc/meminfo"};
  if (const auto cgroup = cgroup_remaining(); cgroup && (!budget || cgroup->bytes < budget->bytes)) budget = cgroup;
  return budget;
}

std::optional<std::size_t> memory_limit_override() {
  const char* text = std::getenv("STRATA_MEMORY_LIMIT_MB");
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(text, &end, 10);
  if (*end != '\0' || mb == 0 || mb > (std::size_t(1) << 40))
    throw std::invalid_argument(fmt::format("STRATA_MEMORY_LIMIT_MB='{}': expected a positive number of MiB", text));
  return static_cast<std::size_t>(mb) << 20;
}

std::string format_bytes(std::size_t bytes) {
  if (bytes >= (std::size_t(1) << 40)) return fmt::format("{:.1f} TiB", double(bytes) / double(std::size_t(1) << 40));
  if (bytes >= (std::size_t(1) << 30)) return fmt::format("{:.1f} GiB", double(bytes) / double(1 << 30));
  if (bytes >= (std::size_t(1) << 20)) return fmt::format("{:.1f} MiB", double(bytes) / double(1 << 20));
  if (bytes >= (std::size_t(1) << 10)) return fmt::format("{:.1f} KiB", double(bytes) / double(1 << 10));
  return fmt::format("{} bytes", bytes);
}

}  // namespace strata
