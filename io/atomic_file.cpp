#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace strata::io {

namespace {

// fsync on a path (a file, or a directory so that a rename in it is durable); best effort for directories.
bool sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return directory;
  const bool ok = ::fsync(fd) == 0 || directory;
  ::close(fd);
  return ok;
}

}  // namespace

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  static std::atomic<unsigned> counter{0};
  temp_ = fmt::format("{}.tmp-{}-{}", target_, ::getpid(), counter++);
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_.c_str());
}

void AtomicFile::commit() {
  if (!sync_path(temp_, false)) throw std::runtime_error(fmt::format("{}: cannot write the file out: {}", target_, std::strerror(errno)));
  if (std::rename(temp_.c_str(), target_.c_str()) != 0)
    throw std::runtime_error(fmt::format("{}: cannot replace the file: {}", target_, std::strerror(errno)));
  committed_ = true;
  const std::filesystem::path parent = std::filesystem::path(target_).parent_path();
  sync_path(parent.empty() ? "." : parent.string(), true);
}

}  // namespace strata::io
