#include "io/idx.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

namespace strata::io {

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

void read_exact(gzFile f, void* dst, std::size_t bytes, const std::string& path, const char* what) {
  std::size_t done = 0;
  while (done < bytes) {
    const unsigned chunk = unsigned(std::min<std::size_t>(bytes - done, 1u << 30));
    const int got = gzread(f, static_cast<char*>(dst) + done, chunk);
    if (got <= 0) {
      int err = 0;
      std::string reason = gzerror(f, &err);
      // zlib prefixes its message with the path, which this message already starts with.
      if (reason.rfind(path + ": ", 0) == 0) reason.erase(0, path.size() + 2);
      throw std::runtime_error(fmt::format("{}: truncated while reading {} ({} of {} bytes){}", path, what, done, bytes,
                                           err < 0 ? ": " + reason : std::string()));
    }
    done += std::size_t(got);
  }
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  // gzread passes plain files through unchanged, so one path reads both.
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
  unsigned char magic[4];
  read_exact(f.get(), magic, 4, path, "the header");
  if (magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error(fmt::format("{}: not an IDX file (bad magic number)", path));
  if (magic[2] != 0x08)
    throw std::runtime_error(fmt::format("{}: IDX element type 0x{:02x} is not unsigned bytes (0x08)", path, magic[2]));
  const int rank = magic[3];
  if (rank < 1 || rank > 8) throw std::runtime_error(fmt::format("{}: IDX rank {} is out of range", path, rank));
  IdxArray out;
  std::uint64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    unsigned char b[4];
    read_exact(f.get(), b, 4, path, "the dimensions");
    const std::uint32_t d = (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) | b[3];
    out.shape.push_back(d);
    total *= d;
    if (total > (std::uint64_t(1) << 34))
      throw std::runtime_error(fmt::format("{}: declared size exceeds 16 GiB", path));
  }
  // Nothing is allocated for data the file cannot hold: a plain file holds what follows the header, and
  // deflate expands at most about 1032 times.
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
  const std::uint64_t header_bytes = 4 + 4 * std::uint64_t(rank);
  const std::uint64_t most = ec ? total : gzdirect(f.get()) ? file_bytes - std::min(file_bytes, header_bytes) : file_bytes * 1032;
  if (total > most)
    throw std::runtime_error(fmt::format("{}: truncated: the header declares {} bytes of data ({}), more than the file can hold", path, total,
                                         fmt::join(out.shape, " x ")));
  out.data.resize(std::size_t(total));
  read_exact(f.get(), out.data.data(), out.data.size(), path, "the data");
  return out;
}

}  // namespace strata::io
