#include "io/hdf5.h"

#include <fmt/format.h>
#include <hdf5.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <type_traits>

namespace strata::io::h5 {

static_assert(std::is_same_v<hid_t, std::int64_t>, "hid_t is stored as std::int64_t");

namespace {

// HDF5 prints its error stack to stderr by default; errors are reported as exceptions instead.
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// Closes an HDF5 identifier with the function for its kind.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer close_;
};

std::string join_path(const std::string& parent, const std::string& name) {
  if (parent.empty() || parent == "/") return "/" + name;
  return parent + "/" + name;
}

// The callback of H5Literate and H5Aiterate2 that lists names into a std::vector<std::string>.
template <class Info>
herr_t append_name(hid_t, const char* name, const Info*, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}

// Keras's limit for one attribute in an object header.
constexpr std::size_t kObjectHeaderLimit = 64512;

}  // namespace

struct Group::FileHandle {
  hid_t id = -1;
  std::string name;
  std::uint64_t size = 0;  // bytes on disk when opened for reading: what any object's data can come from
  ~FileHandle() {
    if (id >= 0) H5Fclose(id);
  }
};

Group::Group(std::shared_ptr<FileHandle> file, std::int64_t id, std::string path) : file_(std::move(file)), id_(id), path_(std::move(path)) {}

Group::~Group() {
  if (id_ >= 0) H5Gclose(id_);
}

Group::Group(Group&& other) noexcept : file_(std::move(other.file_)), id_(other.id_), path_(std::move(other.path_)) { other.id_ = -1; }

Group& Group::operator=(Group&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Gclose(id_);
    file_ = std::move(other.file_);
    id_ = other.id_;
    path_ = std::move(other.path_);
    other.id_ = -1;
  }
  return *this;
}

const std::string& Group::file_name() const { return file_->name; }

std::string Group::describe(const std::string& name) const {
  return fmt::format("{}: {}", file_->name, name.empty() ? path_ : join_path(path_, name));
}

bool Group::exists(const std::string& name) const {
  // H5Lexists needs every parent of a nested path to exist, so walk it.
  std::size_t pos = 0;
  while (true) {
    const std::size_t slash = name.find('/', pos);
    const std::string prefix = name.substr(0, slash);
    if (prefix.empty() || H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

namespace {
H5I_type_t object_type(hid_t loc, const std::string& name) {
  const Handle obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.valid() ? H5Iget_type(obj.get()) : H5I_BADID;
}
}  // namespace

bool Group::is_group(const std::string& name) const { return exists(name) && object_type(id_, name) == H5I_GROUP; }
bool Group::is_dataset(const std::string& name) const { return exists(name) && object_type(id_, name) == H5I_DATASET; }

Group Group::group(const std::string& name) const {
  if (!is_group(name)) throw std::runtime_error(fmt::format("{}: no such group", describe(name)));
  const hid_t id = H5Gopen2(id_, name.c_str(), H5P_DEFAULT);
  if (id < 0) throw std::runtime_error(fmt::format("{}: cannot open the group", describe(name)));
  return Group(file_, id, join_path(path_, name));
}

Group Group::create_group(const std::string& name) {
  if (is_group(name)) return group(name);
  const Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  const hid_t id = H5Gcreate2(id_, name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw std::runtime_error(fmt::format("{}: cannot create the group", describe(name)));
  return Group(file_, id, join_path(path_, name));
}

std::vector<std::string> Group::members() const {
  std::vector<std::string> names;
  hsize_t index = 0;
  const herr_t status = H5Literate(id_, H5_INDEX_NAME, H5_ITER_INC, &index, append_name<H5L_info_t>, &names);
  if (status < 0) throw std::runtime_error(fmt::format("{}: cannot list the group", describe("")));
  return names;
}

bool Group::has_attribute(const std::string& name) const { return H5Aexists(id_, name.c_str()) > 0; }

std::string Group::object_key() const {
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  if (H5Oget_info3(id_, &info, H5O_INFO_BASIC) < 0) throw std::runtime_error(fmt::format("{}: unreadable object header", describe("")));
  return std::string(reinterpret_cast<const char*>(&info.token), sizeof(info.token));
#else
  H5O_info_t info;
  if (H5Oget_info2(id_, &info, H5O_INFO_BASIC) < 0) throw std::runtime_error(fmt::format("{}: unreadable object header", describe("")));
  return std::to_string(info.addr);
#endif
}

std::vector<std::string> Group::attribute_names() const {
  std::vector<std::string> names;
  hsize_t index = 0;
  const herr_t status = H5Aiterate2(id_, H5_INDEX_NAME, H5_ITER_INC, &index, append_name<H5A_info_t>, &names);
  if (status < 0) throw std::runtime_error(fmt::format("{}: cannot list the attributes", describe("")));
  return names;
}

namespace {

// Every element of a string attribute (scalar or 1-D), fixed or variable length.
std::vector<std::string> read_strings(hid_t attr, const std::string& where, std::uint64_t file_size) {
  const Handle type(H5Aget_type(attr), H5Tclose);
  const Handle space(H5Aget_space(attr), H5Sclose);
  if (!type.valid() || !space.valid()) throw std::runtime_error(fmt::format("{}: unreadable attribute", where));
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  // Every element is stored in the file (a variable-length one as at least a heap reference), so a count
  // beyond the file's size is a lie that would only allocate.
  if (count < 0 || std::uint64_t(count) > file_size) throw std::runtime_error(fmt::format("{}: attribute declares {} elements, more than the file could hold", where, count));
  std::vector<std::string> out;
  if (count == 0) return out;  // Keras writes an empty list as an empty float array
  if (H5Tget_class(type.get()) != H5T_STRING) throw std::runtime_error(fmt::format("{}: attribute is not a string", where));
  const Handle memtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(memtype.get(), H5Tget_cset(type.get()));
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    std::vector<char*> buffer(std::size_t(count), nullptr);
    if (H5Aread(attr, memtype.get(), buffer.data()) < 0) throw std::runtime_error(fmt::format("{}: cannot read the attribute", where));
    for (char* s : buffer) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(memtype.get(), space.get(), H5P_DEFAULT, buffer.data());
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  if (size == 0 || size > file_size || std::uint64_t(count) > file_size / size)
    throw std::runtime_error(fmt::format("{}: {} strings of {} bytes do not fit in the file", where, count, size));
  H5Tset_size(memtype.get(), size);
  H5Tset_strpad(memtype.get(), H5T_STR_NULLPAD);
  std::vector<char> buffer(std::size_t(count) * size + 1, '\0');
  if (H5Aread(attr, memtype.get(), buffer.data()) < 0) throw std::runtime_error(fmt::format("{}: cannot read the attribute", where));
  for (hssize_t i = 0; i < count; ++i) {
    const char* s = buffer.data() + std::size_t(i) * size;
    out.emplace_back(s, strnlen(s, size));
  }
  return out;
}

}  // namespace

std::string Group::string_attribute(const std::string& name) const {
  if (!has_attribute(name)) throw std::runtime_error(fmt::format("{}: no attribute '{}'", describe(""), name));
  const Handle attr(H5Aopen(id_, name.c_str(), H5P_DEFAULT), H5Aclose);
  const std::string where = fmt::format("{} attribute '{}'", describe(""), name);
  auto values = read_strings(attr.get(), where, file_->size);
  if (values.size() != 1) throw std::runtime_error(fmt::format("{}: expected one string, found {}", where, values.size()));
  return values[0];
}

std::vector<std::string> Group::string_list_attribute(const std::string& name) const {
  auto read = [&](const std::string& attr_name) {
    const Handle attr(H5Aopen(id_, attr_name.c_str(), H5P_DEFAULT), H5Aclose);
    return read_strings(attr.get(), fmt::format("{} attribute '{}'", describe(""), attr_name), file_->size);
  };
  if (has_attribute(name)) return read(name);
  std::vector<std::string> out;
  for (int chunk = 0; has_attribute(name + std::to_string(chunk)); ++chunk) {
    auto part = read(name + std::to_string(chunk));
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

namespace {

void write_string_attribute(hid_t loc, const std::string& name, const std::vector<std::string>& values, bool scalar,
                            const std::string& where) {
  if (H5Aexists(loc, name.c_str()) > 0) H5Adelete(loc, name.c_str());
  const Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const hsize_t n = values.size();
  const Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  const Handle attr(H5Acreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  if (!attr.valid() || (!values.empty() && H5Awrite(attr.get(), type.get(), pointers.data()) < 0))
    throw std::runtime_error(fmt::format("{}: cannot write attribute '{}'", where, name));
}

}  // namespace

void Group::set_attribute(const std::string& name, const std::string& value) {
  write_string_attribute(id_, name, {value}, true, describe(""));
}

void Group::set_attribute(const std::string& name, const std::vector<std::string>& values) {
  // Keras splits a list whose fixed-width array (count x longest) would exceed the header limit into
  // name0, name1, ... as numpy.array_split does; readers expect either form.
  std::size_t longest = 1;
  for (const auto& v : values) {
    if (v.size() > kObjectHeaderLimit)
      throw std::runtime_error(fmt::format("{}: attribute '{}' holds a string longer than {} bytes", describe(""), name, kObjectHeaderLimit));
    longest = std::max(longest, v.size());
  }
  std::size_t chunks = 1;
  while ((values.size() + chunks - 1) / chunks * longest > kObjectHeaderLimit) ++chunks;
  if (chunks == 1) {
    write_string_attribute(id_, name, values, false, describe(""));
    return;
  }
  std::size_t begin = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t size = values.size() / chunks + (c < values.size() % chunks ? 1 : 0);
    write_string_attribute(id_, name + std::to_string(c), {values.begin() + std::ptrdiff_t(begin), values.begin() + std::ptrdiff_t(begin + size)},
                           false, describe(""));
    begin += size;
  }
}

FloatArray Group::read_floats(const std::string& name, std::int64_t max_elements) const {
  if (!is_dataset(name)) throw std::runtime_error(fmt::format("{}: no such dataset", describe(name)));
  const Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  const Handle type(H5Dget_type(ds.get()), H5Tclose);
  const Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!ds.valid() || !type.valid() || !space.valid()) throw std::runtime_error(fmt::format("{}: unreadable dataset", describe(name)));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) throw std::runtime_error(fmt::format("{}: dataset is not numeric", describe(name)));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > kMaxRank) throw std::runtime_error(fmt::format("{}: dataset rank {} is not supported", describe(name), rank));
  hsize_t dims[kMaxRank] = {};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  FloatArray out;
  std::int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > hsize_t(max_elements) || (dims[i] > 0 && count > max_elements / std::int64_t(dims[i])))
      throw std::runtime_error(fmt::format("{}: dataset declares more than {} elements", describe(name), max_elements));
    count *= std::int64_t(dims[i]);
    out.shape.push_back(std::int64_t(dims[i]));
  }
  // The values must come from the file: contiguous or compact data is stored as declared, and chunks
  // compressed with deflate (the only filter in Keras's files) expand at most about 1032 times.
  const std::uint64_t declared = std::uint64_t(count) * H5Tget_size(type.get());
  const std::uint64_t stored = H5Dget_storage_size(ds.get());
  const Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  const bool filtered = dcpl.valid() && H5Pget_nfilters(dcpl.get()) > 0;
  if (count > 0 && (filtered ? declared / 1100 > stored : declared > stored))
    throw std::runtime_error(fmt::format("{}: dataset declares {} values ({} bytes) but the file stores {} bytes for it (truncated or corrupt file?)",
                                         describe(name), count, declared, stored));
  out.values.resize(std::size_t(count));
  if (count > 0 && H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.values.data()) < 0)
    throw std::runtime_error(fmt::format("{}: cannot read the dataset (truncated or corrupt file?)", describe(name)));
  return out;
}

void Group::write_floats(const std::string& name, const Shape& shape, const float* values) {
  hsize_t dims[kMaxRank] = {};
  for (int i = 0; i < shape.rank(); ++i) dims[i] = hsize_t(shape[i]);
  const Handle space(shape.rank() == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(shape.rank(), dims, nullptr), H5Sclose);
  const Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  const Handle ds(H5Dcreate2(id_, name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.valid() || (shape.numel() > 0 && H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0))
    throw std::runtime_error(fmt::format("{}: cannot write the dataset", describe(name)));
}

void Group::write_int(const std::string& name, std::int64_t value) {
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  const Handle ds(H5Dcreate2(id_, name.c_str(), H5T_STD_I64LE, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!ds.valid() || H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0)
    throw std::runtime_error(fmt::format("{}: cannot write the dataset", describe(name)));
}

std::int64_t Group::read_int(const std::string& name) const {
  const FloatArray a = read_floats(name, 1);
  if (a.values.size() != 1) throw std::runtime_error(fmt::format("{}: expected one number", describe(name)));
  // Integers beyond float's exact range do not occur in the counters stored this way.
  return std::int64_t(a.values[0]);
}

namespace {

// Reads every group, attribute and dataset the way the readers above do, so that a file that would crash
// libhdf5 in them crashes here first. Each group is read once, however many links lead to it.
void read_everything(const Group& group, int depth, std::set<std::string>& seen) {
  if (depth > 64 || !seen.insert(group.object_key()).second) return;  // hard links can make cycles
  for (const std::string& attr : group.attribute_names()) {
    try {
      group.string_list_attribute(attr);
    } catch (const std::exception&) {
    }
  }
  for (const std::string& name : group.members()) {
    try {
      if (group.is_group(name)) read_everything(group.group(name), depth + 1, seen);
      else if (group.is_dataset(name)) group.read_floats(name);
    } catch (const std::exception&) {
    }
  }
}

bool probe_enabled() {
  const char* env = std::getenv("STRATA_HDF5_PROBE");
  return !(env && std::strcmp(env, "0") == 0);
}

// libhdf5 trusts much of what a file says, and a crafted file can crash it in ways no check before it
// can rule out. So a file is first read whole in a child process: a crash there becomes an error here,
// and this process never runs the code that crashed.
std::string run_probe(const std::string& path) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return {};  // no process to spare: read it here, unprotected, rather than refuse a good file
  if (pid == 0) {
    // A crash must end the child plainly: no handler of the parent's (a crash reporter, a sanitizer,
    // a fuzzer) should act on it as if it were the parent's own.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, SIG_DFL);
    try {
      std::set<std::string> seen;
      read_everything(File::open_unprobed(path), 0, seen);
    } catch (...) {
    }
    ::_exit(0);
  }
  // libhdf5 can also loop for ever on a corrupt heap. A healthy read goes far faster than 10 MB/s.
  std::error_code ec;
  const std::uintmax_t bytes = std::filesystem::file_size(path, ec);
  const auto allowed = std::chrono::seconds(10 + (ec ? 0 : std::int64_t(bytes / 10'000'000)));
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + allowed;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return {};
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return fmt::format("{}: the HDF5 library did not finish reading the file in {} s: it is corrupt or crafted "
                         "(it was read in a separate process, which was stopped)", path, allowed.count());
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  // The child ends with _exit(0) whatever the file holds, so anything else is the library dying in it.
  if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0))
    return fmt::format("{}: the HDF5 library crashed reading this file ({}): it is corrupt or crafted; "
                       "it was read in a separate process, so nothing else was affected",
                       path, WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : fmt::format("exit status {}", WEXITSTATUS(status)));
  return {};
}

// The probe's verdict is kept per file version (path, size, modification time), so that opening the same
// file again (load_model reads a file twice) costs nothing and a bad file fails at once.
void probe_in_child(const std::string& path) {
  if (!probe_enabled()) return;
  std::error_code size_error, time_error;
  const auto size = std::filesystem::file_size(path, size_error);
  const auto mtime = std::filesystem::last_write_time(path, time_error);
  std::string verdict;  // the error message; empty: the file read cleanly
  if (size_error || time_error) {
    verdict = run_probe(path);
  } else {
    const std::string key = fmt::format("{}\n{}\n{}", path, size, mtime.time_since_epoch().count());
    static std::mutex mutex;
    static std::map<std::string, std::string> verdicts;
    std::unique_lock lock(mutex);
    if (const auto it = verdicts.find(key); it != verdicts.end()) {
      verdict = it->second;
    } else {
      lock.unlock();
      verdict = run_probe(path);
      lock.lock();
      if (verdicts.size() >= 1000) verdicts.clear();
      verdicts[key] = verdict;
    }
  }
  if (!verdict.empty()) throw std::runtime_error(verdict);
}

}  // namespace

File File::open(const std::string& path) {
  if (is_hdf5_file(path)) probe_in_child(path);
  return open_unprobed(path);
}

File File::open_unprobed(const std::string& path) {
  silence_hdf5();
  if (!std::ifstream(path)) throw std::runtime_error(fmt::format("{}: cannot open the file", path));
  if (!is_hdf5_file(path)) throw std::runtime_error(fmt::format("{}: not an HDF5 file", path));
  auto handle = std::make_shared<FileHandle>();
  handle->name = path;
  std::error_code ec;
  handle->size = std::filesystem::file_size(path, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: cannot read the file's size: {}", path, ec.message()));
  handle->id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (handle->id < 0) throw std::runtime_error(fmt::format("{}: HDF5 cannot open it (truncated or corrupt?)", path));
  const hid_t root = H5Gopen2(handle->id, "/", H5P_DEFAULT);
  if (root < 0) throw std::runtime_error(fmt::format("{}: cannot open the root group", path));
  return File(std::move(handle), root, "/");
}

File File::create(const std::string& path) {
  silence_hdf5();
  auto handle = std::make_shared<FileHandle>();
  handle->name = path;
  handle->size = std::numeric_limits<std::uint64_t>::max();  // Strata's own data: no bound to check against
  handle->id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (handle->id < 0) throw std::runtime_error(fmt::format("{}: cannot create the file", path));
  const hid_t root = H5Gopen2(handle->id, "/", H5P_DEFAULT);
  if (root < 0) throw std::runtime_error(fmt::format("{}: cannot open the root group", path));
  return File(std::move(handle), root, "/");
}

void File::close() {
  if (!file_) return;
  if (id_ >= 0) H5Gclose(id_);
  id_ = -1;
  const hid_t fid = file_->id;
  file_->id = -1;
  const bool flushed = H5Fflush(fid, H5F_SCOPE_GLOBAL) >= 0;
  const bool closed = H5Fclose(fid) >= 0;
  if (!flushed || !closed) throw std::runtime_error(fmt::format("{}: cannot write the file out", file_->name));
}

bool is_hdf5_file(const std::string& path) {
  static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  std::ifstream in(path, std::ios::binary);
  unsigned char head[8] = {};
  return in.read(reinterpret_cast<char*>(head), 8) && std::memcmp(head, signature, 8) == 0;
}

}  // namespace strata::io::h5
