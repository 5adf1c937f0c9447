#include "io/zip.h"

#include <fmt/format.h>
#include <zlib.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "backends/memory.h"

namespace strata::io {

namespace {

constexpr std::uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfCentralDirectory = 0x06054b50;
// 1980-01-01 00:00, the earliest DOS date, as a fixed timestamp.
constexpr std::uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;

void put16(std::string& out, std::uint16_t v) {
  out.push_back(char(v & 0xff));
  out.push_back(char(v >> 8));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, std::uint16_t(v & 0xffff));
  put16(out, std::uint16_t(v >> 16));
}

std::uint32_t crc_of(const std::string& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  std::size_t done = 0;
  while (done < data.size()) {
    const uInt chunk = uInt(std::min<std::size_t>(data.size() - done, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done), chunk);
    done += chunk;
  }
  return std::uint32_t(crc);
}

}  // namespace

void write_zip(const std::string& path, const std::vector<ZipMember>& members) {
  std::string central;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(fmt::format("{}: cannot create the file", path));
  std::uint64_t offset = 0;
  for (const ZipMember& m : members) {
    if (m.data.size() >= 0xffffffffu || offset >= 0xffffffffu)
      throw std::runtime_error(fmt::format("{}: member '{}' needs the zip64 extension, which is not written", path, m.name));
    const std::uint32_t crc = crc_of(m.data), size = std::uint32_t(m.data.size());
    std::string header;
    put32(header, kLocalHeader);
    put16(header, 20);  // version needed: 2.0
    put16(header, 0);   // flags
    put16(header, 0);   // stored
    put16(header, kDosTime);
    put16(header, kDosDate);
    put32(header, crc);
    put32(header, size);
    put32(header, size);
    put16(header, std::uint16_t(m.name.size()));
    put16(header, 0);
    header += m.name;
    out.write(header.data(), std::streamsize(header.size()));
    out.write(m.data.data(), std::streamsize(m.data.size()));

    put32(central, kCentralHeader);
    put16(central, 20);  // made by
    put16(central, 20);  // needed
    put16(central, 0);
    put16(central, 0);
    put16(central, kDosTime);
    put16(central, kDosDate);
    put32(central, crc);
    put32(central, size);
    put32(central, size);
    put16(central, std::uint16_t(m.name.size()));
    put16(central, 0);  // extra
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, std::uint32_t(offset));
    central += m.name;
    offset += header.size() + m.data.size();
  }
  std::string end;
  put32(end, kEndOfCentralDirectory);
  put16(end, 0);
  put16(end, 0);
  put16(end, std::uint16_t(members.size()));
  put16(end, std::uint16_t(members.size()));
  put32(end, std::uint32_t(central.size()));
  put32(end, std::uint32_t(offset));
  put16(end, 0);
  out.write(central.data(), std::streamsize(central.size()));
  out.write(end.data(), std::streamsize(end.size()));
  out.close();
  if (!out) throw std::runtime_error(fmt::format("{}: cannot write the file", path));
}

namespace {

class Reader {
 public:
  Reader(const std::string& path, const std::string& bytes) : path_(path), bytes_(bytes) {}
  std::uint16_t u16(std::uint64_t at) const {
    need(at, 2);
    return std::uint16_t(byte(at) | (byte(at + 1) << 8));
  }
  std::uint32_t u32(std::uint64_t at) const { return std::uint32_t(u16(at)) | (std::uint32_t(u16(at + 2)) << 16); }
  std::string str(std::uint64_t at, std::uint64_t n) const {
    need(at, n);
    return bytes_.substr(std::size_t(at), std::size_t(n));
  }
  void need(std::uint64_t at, std::uint64_t n) const {
    if (at > bytes_.size() || n > bytes_.size() - at)
      throw std::runtime_error(fmt::format("{}: not a zip archive, or truncated (a record at byte {} runs past the end)", path_, at));
  }
  std::uint64_t size() const { return bytes_.size(); }

 private:
  unsigned byte(std::uint64_t at) const { return static_cast<unsigned char>(bytes_[std::size_t(at)]); }
  const std::string& path_;
  const std::string& bytes_;
};

// A member name that stays inside the directory it is extracted to.
bool is_safe_name(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.find('\\') != std::string::npos || name.find(':') != std::string::npos) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t slash = name.find('/', start);
    const std::string part = name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

}  // namespace

std::vector<ZipMember> read_zip(const std::string& path, ZipLimits limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the file", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Reader r(path, bytes);
  // The end-of-central-directory record: the last 22 bytes, or earlier when a comment follows it.
  if (bytes.size() < 22) throw std::runtime_error(fmt::format("{}: not a zip archive (too short)", path));
  std::uint64_t eocd = bytes.size() - 22;
  const std::uint64_t lowest = bytes.size() > 22 + 65535 ? bytes.size() - 22 - 65535 : 0;
  while (r.u32(eocd) != kEndOfCentralDirectory) {
    if (eocd == lowest) throw std::runtime_error(fmt::format("{}: not a zip archive (no end-of-central-directory record)", path));
    --eocd;
  }
  const std::uint16_t entries = r.u16(eocd + 10);
  const std::uint32_t cd_size = r.u32(eocd + 12), cd_offset = r.u32(eocd + 16);
  if (cd_offset == 0xffffffffu || entries == 0xffff) throw std::runtime_error(fmt::format("{}: zip64 archives are not read", path));
  r.need(cd_offset, cd_size);
  std::vector<ZipMember> members;
  std::uint64_t at = cd_offset, unpacked = 0;
  const std::optional<MemoryBudget> budget = host_memory_available();
  for (std::uint16_t i = 0; i < entries; ++i) {
    if (r.u32(at) != kCentralHeader) throw std::runtime_error(fmt::format("{}: corrupt central directory (entry {})", path, i));
    const std::uint16_t flags = r.u16(at + 8), method = r.u16(at + 10);
    const std::uint32_t crc = r.u32(at + 16), compressed = r.u32(at + 20), size = r.u32(at + 24);
    const std::uint16_t name_len = r.u16(at + 28), extra_len = r.u16(at + 30), comment_len = r.u16(at + 32);
    const std::uint32_t local = r.u32(at + 42);
    ZipMember m{r.str(at + 46, name_len), {}};
    at += 46 + std::uint64_t(name_len) + extra_len + comment_len;
    const std::string where = fmt::format("{}: member '{}'", path, m.name);
    if (!is_safe_name(m.name)) throw std::runtime_error(fmt::format("{}: the name could write outside the directory; refused", where));
    if (flags & 1) throw std::runtime_error(fmt::format("{}: encrypted members are not read", where));
    if (size > limits.max_member_bytes)
      throw std::runtime_error(fmt::format("{}: {} bytes uncompressed, more than the limit of {}", where, size, limits.max_member_bytes));
    if (method == 8 && size > std::uint64_t(compressed) * limits.max_ratio + 4096)
      throw std::runtime_error(fmt::format("{}: declares {} bytes from {} compressed: refused as a zip bomb", where, size, compressed));
    // Many members each under the limits can still add up to more memory than the machine has.
    unpacked += size;
    if (budget && unpacked > budget->bytes)
      throw std::runtime_error(fmt::format("{}: the members unpack to more than the {} of memory available ({})", where,
                                           format_bytes(budget->bytes), budget->source));
    if (r.u32(local) != kLocalHeader) throw std::runtime_error(fmt::format("{}: corrupt local header", where));
    const std::uint64_t data_at = local + 30 + std::uint64_t(r.u16(local + 26)) + r.u16(local + 28);
    r.need(data_at, compressed);
    if (method == 0) {
      if (compressed != size) throw std::runtime_error(fmt::format("{}: stored sizes disagree", where));
      m.data = r.str(data_at, size);
    } else if (method == 8) {
      m.data.resize(size);
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw std::runtime_error(fmt::format("{}: zlib cannot start", where));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + data_at));
      z.avail_in = compressed;
      z.next_out = reinterpret_cast<Bytef*>(m.data.data());
      z.avail_out = size;
      const int status = inflate(&z, Z_FINISH);
      const bool complete = status == Z_STREAM_END && z.total_out == size;
      inflateEnd(&z);
      if (!complete) throw std::runtime_error(fmt::format("{}: corrupt compressed data", where));
    } else {
      throw std::runtime_error(fmt::format("{}: compression method {} is not read (stored or deflate)", where, method));
    }
    if (crc_of(m.data) != crc) throw std::runtime_error(fmt::format("{}: CRC mismatch (corrupt archive)", where));
    members.push_back(std::move(m));
  }
  return members;
}

}  // namespace strata::io
