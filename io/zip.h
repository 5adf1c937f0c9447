// Zip archives as Keras's .keras files use them: written with stored (uncompressed) members, read with
// stored or deflated ones (zlib). Reading checks every offset against the archive, rejects member names
// that could escape a directory, and refuses members larger than a limit or than their compression
// could plausibly produce, so that a hostile archive fails with a message instead of filling memory.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strata::io {

struct ZipMember {
  std::string name;
  std::string data;
};

// Writes `members` (stored) to `path`; the caller makes the write atomic.
void write_zip(const std::string& path, const std::vector<ZipMember>& members);

struct ZipLimits {
  std::uint64_t max_member_bytes = std::uint64_t(4) << 30;  // uncompressed, per member
  std::uint64_t max_ratio = 1000;                           // uncompressed / compressed, for deflated members
};

// Every member of the archive at `path`; throws naming the file and the member on anything malformed.
std::vector<ZipMember> read_zip(const std::string& path, ZipLimits limits = {});

}  // namespace strata::io
