// A file that appears complete or not at all: it is written to a temporary next to the target, and
// commit() makes it durable and renames it over the target, so a crash mid-write leaves the previous
// file as it was. Without commit() the temporary is removed.
#pragma once

#include <string>

namespace strata::io {

// A fresh name next to `target` for a temporary file: "<target>.tmp-<pid>-<n><suffix>". Temporaries of the
// same target left by processes that no longer exist (killed mid-write) are removed on the way.
std::string temporary_path_near(const std::string& target, const char* suffix = "");

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_; }
  const std::string& target() const { return target_; }
  void commit();

 private:
  std::string target_, temp_;
  bool committed_ = false;
};

}  // namespace strata::io
