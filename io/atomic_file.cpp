#include "io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
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

void remove_orphaned_temporaries(const std::string& target) {
  namespace fs = std::filesystem;
  const fs::path t(target);
  const std::string prefix = t.filename().string() + ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(t.parent_path().empty() ? fs::path(".") : t.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* rest = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &rest, 10);
    if (pid <= 0 || *rest != '-' || pid == ::getpid()) continue;
    // Only a writer that is gone for certain: a live process with that id may be writing it now.
    if (::kill(pid_t(pid), 0) != 0 && errno == ESRCH) fs::remove(it->path(), ec);
  }
}

}  // namespace

std::string temporary_path_near(const std::string& target, const char* suffix) {
  static std::atomic<unsigned> counter{0};
  remove_orphaned_temporaries(target);
  return fmt::format("{}.tmp-{}-{}{}", target, ::getpid(), counter++, suffix);
}

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)), temp_(temporary_path_near(target_)) {}

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
