// A small RAII layer over the HDF5 C library for Keras's files: groups, string attributes (fixed or
// variable length, and Keras's numbered chunks), and numeric datasets read as float. Every failure is one
// std::runtime_error that names the file and the object; HDF5's own error printing is off.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/shape.h"

namespace strata::io::h5 {

// A dataset's values converted to float32, with its shape (rank 0 for a scalar).
struct FloatArray {
  Shape shape;
  std::vector<float> values;
};

// A group of an open file (the root is "/"). Cheap to move; keeps its file open.
class Group {
 public:
  ~Group();
  Group(Group&& other) noexcept;
  Group& operator=(Group&& other) noexcept;
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  const std::string& path() const { return path_; }
  const std::string& file_name() const;

  // Whether `name` (a relative path, '/' allowed) exists, and what it is.
  bool exists(const std::string& name) const;
  bool is_group(const std::string& name) const;
  bool is_dataset(const std::string& name) const;
  Group group(const std::string& name) const;
  // Creates a group (and any missing parents).
  Group create_group(const std::string& name);
  // The names directly inside, in HDF5's name order.
  std::vector<std::string> members() const;

  bool has_attribute(const std::string& name) const;
  std::vector<std::string> attribute_names() const;
  // Identifies the group within its file (two links to one group give the same key).
  std::string object_key() const;
  // A scalar string attribute, fixed or variable length.
  std::string string_attribute(const std::string& name) const;
  // A list of strings: a 1-D string attribute `name`, a scalar one (a list of one), or Keras's chunks
  // name0, name1, ... that split a long list; an empty numeric array reads as an empty list. Absent: empty.
  std::vector<std::string> string_list_attribute(const std::string& name) const;
  // Writes variable-length UTF-8 strings, as h5py writes Python str.
  void set_attribute(const std::string& name, const std::string& value);
  // A 1-D list, split into numbered chunks when it would not fit in an object header (as Keras does).
  void set_attribute(const std::string& name, const std::vector<std::string>& values);

  // A numeric dataset converted to float32; throws when its element count exceeds `max_elements`.
  FloatArray read_floats(const std::string& name, std::int64_t max_elements = std::int64_t(1) << 31) const;
  // A float32 dataset (missing parent groups are created); rank-0 shape writes a scalar.
  void write_floats(const std::string& name, const Shape& shape, const float* values);
  // A scalar int64 dataset, and its reading from any integer or float dataset.
  void write_int(const std::string& name, std::int64_t value);
  std::int64_t read_int(const std::string& name) const;

 protected:
  struct FileHandle;
  Group(std::shared_ptr<FileHandle> file, std::int64_t id, std::string path);
  std::string describe(const std::string& name) const;  // "file.h5: /a/b/name"

  std::shared_ptr<FileHandle> file_;
  std::int64_t id_ = -1;
  std::string path_;
};

// An HDF5 file; the object is its root group.
class File : public Group {
 public:
  // Read only. The file is first read whole in a child process (unless STRATA_HDF5_PROBE=0), so that a
  // file crafted to crash libhdf5 fails with an error here instead of taking the process down.
  static File open(const std::string& path);
  static File open_unprobed(const std::string& path);
  static File create(const std::string& path);  // truncates
  // Writes everything out and closes the file (destruction closes it too, without reporting errors).
  void close();

 private:
  using Group::Group;
};

// Whether `path` starts with HDF5's signature (at offset 0; user blocks are not looked for).
bool is_hdf5_file(const std::string& path);

}  // namespace strata::io::h5
