// Shared by the fuzz targets: Strata's readers take paths, so each input is written to a file in a
// directory of this process's own (on /dev/shm where there is one, to keep executions fast).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace strata::fuzz {

inline const std::filesystem::path& scratch_directory() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("strata-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    // Hostile models may ask for more memory than a fuzzing run allows: Strata refuses them up front.
    ::setenv("STRATA_MEMORY_LIMIT_MB", "1024", 0);
    return d;
  }();
  return dir;
}

// Writes the input to `name` in the scratch directory and returns its path.
inline std::string input_file(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const std::string path = (scratch_directory() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace strata::fuzz
