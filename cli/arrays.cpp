#include "cli/arrays.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "io/atomic_file.h"
#include "io/idx.h"

namespace strata::cli {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <class T>
T read_scalar(const char* p, bool swap) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if (swap) {
    auto* b = reinterpret_cast<unsigned char*>(&v);
    std::reverse(b, b + sizeof(T));
  }
  return v;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) cells.push_back(std::move(cell)), cell.clear();
    else if (c != '\r') cell += c;
  }
  cells.push_back(cell);
  for (auto& s : cells) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
  }
  return cells;
}

}  // namespace

Array read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the file", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(fmt::format("{}: not a .npy file", path));
  const int major = static_cast<unsigned char>(bytes[6]);
  const std::size_t len_size = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_size) throw std::runtime_error(fmt::format("{}: truncated .npy header", path));
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_size; ++i) header_len |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  // NumPy itself refuses headers over 10000 bytes (max_header_size); so does this reader.
  if (header_len > 10000) throw std::runtime_error(fmt::format("{}: .npy header of {} bytes is longer than NumPy writes", path, header_len));
  const std::size_t data_at = 8 + len_size + header_len;
  if (bytes.size() < data_at) throw std::runtime_error(fmt::format("{}: truncated .npy header", path));
  const std::string header = bytes.substr(8 + len_size, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<>|=])([a-z])(\\d+)'")))
    throw std::runtime_error(fmt::format("{}: .npy header has no dtype: {}", path, header));
  const char order = m[1].str()[0], kind = m[2].str()[0];
  const int size = m[3].length() > 2 ? 0 : std::stoi(m[3].str());  // 0: refused below
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    throw std::runtime_error(fmt::format("{}: Fortran-ordered arrays are not supported (save it in C order)", path));
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) throw std::runtime_error(fmt::format("{}: .npy header has no shape", path));
  Shape shape;
  std::stringstream dims(m[1].str());
  for (std::string d; std::getline(dims, d, ',');) {
    d.erase(std::remove_if(d.begin(), d.end(), [](char c) { return c == ' ' || c == 'L'; }), d.end());
    if (d.empty()) continue;
    std::size_t used = 0;
    long long dim = -1;
    try {
      dim = std::stoll(d, &used);
    } catch (const std::exception&) {
    }
    if (dim < 0 || used != d.size()) throw std::runtime_error(fmt::format("{}: .npy header has a bad shape: ({})", path, m[1].str()));
    shape.push_back(dim);
  }
  const bool supported = (kind == 'f' && (size == 4 || size == 8)) || (kind == 'i' && (size == 4 || size == 8)) || (kind == 'u' && size == 1);
  if (!supported) throw std::runtime_error(fmt::format("{}: dtype '{}{}' is not supported (float32, float64, uint8, int32, int64)", path, kind, size));
  const bool swap = (order == '>' && std::endian::native == std::endian::little) || (order == '<' && std::endian::native == std::endian::big);
  const std::int64_t n = shape.numel();
  // Compared by division: the declared count times the element size may not fit in 64 bits.
  if (std::uint64_t(n) > (bytes.size() - data_at) / std::uint64_t(size))
    throw std::runtime_error(fmt::format("{}: the data is shorter than its shape {}", path, shape.to_string()));
  const char* p = bytes.data() + data_at;
  if (kind == 'u' && size == 1) return Array::from_bytes(std::vector<std::uint8_t>(p, p + n), shape);
  std::vector<float> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const char* e = p + i * size;
    if (kind == 'f' && size == 4) values[std::size_t(i)] = read_scalar<float>(e, swap);
    else if (kind == 'f' && size == 8) values[std::size_t(i)] = float(read_scalar<double>(e, swap));
    else if (kind == 'i' && size == 4) values[std::size_t(i)] = float(read_scalar<std::int32_t>(e, swap));
    else values[std::size_t(i)] = float(read_scalar<std::int64_t>(e, swap));
  }
  return Array::from_floats(std::move(values), shape);
}

Array read_array_file(const std::string& path) {
  if (ends_with(path, ".npy")) return read_npy(path);
  const io::IdxArray idx = io::read_idx(path);
  return Array::from_bytes(idx.data, Shape(std::span<const std::int64_t>(idx.shape)));
}

Array read_csv_columns(const std::string& path, std::vector<std::string> columns, const std::vector<std::string>& exclude) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the file", path));
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(fmt::format("{}: empty file (a header row is expected)", path));
  const std::vector<std::string> header = split_csv_line(line);
  if (columns.empty())
    for (const auto& h : header)
      if (std::find(exclude.begin(), exclude.end(), h) == exclude.end()) columns.push_back(h);
  std::vector<std::size_t> index;
  for (const auto& c : columns) {
    auto it = std::find(header.begin(), header.end(), c);
    if (it == header.end()) throw std::runtime_error(fmt::format("{}:1: no column '{}' (columns: {})", path, c, fmt::join(header, ", ")));
    index.push_back(std::size_t(it - header.begin()));
  }
  std::vector<float> values;
  std::int64_t rows = 0;
  for (int line_number = 2; std::getline(in, line); ++line_number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto cells = split_csv_line(line);
    for (std::size_t k = 0; k < index.size(); ++k) {
      if (index[k] >= cells.size())
        throw std::runtime_error(fmt::format("{}:{}: {} values, but column '{}' is number {}", path, line_number, cells.size(), columns[k], index[k] + 1));
      try {
        std::size_t used = 0;
        values.push_back(std::stof(cells[index[k]], &used));
        if (used != cells[index[k]].size()) throw std::invalid_argument("trailing characters");
      } catch (const std::exception&) {
        throw std::runtime_error(fmt::format("{}:{}: column '{}': '{}' is not a number", path, line_number, columns[k], cells[index[k]]));
      }
    }
    ++rows;
  }
  return Array::from_floats(std::move(values), {rows, std::int64_t(columns.size())});
}

void write_npy(const std::string& path, const Array& array) {
  std::string dims;
  for (auto d : array.shape()) dims += fmt::format("{}, ", d);
  if (array.shape().rank() > 1) dims.resize(dims.size() - 2);
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  io::AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    out.write("\x93NUMPY\x01\x00", 8);
    const std::uint16_t len = std::uint16_t(header.size());
    out.put(char(len & 0xff)).put(char(len >> 8));
    out << header;
    const auto values = array.to_floats();
    out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write the file", path));
  }
  file.commit();
}

void write_csv(const std::string& path, const Array& array) {
  const std::int64_t rows = array.rows(), cols = rows > 0 ? array.size() / rows : 0;
  io::AtomicFile file(path);
  {
    std::ofstream out(file.temp_path());
    for (std::int64_t c = 0; c < cols; ++c) out << (c ? "," : "") << "column_" << c;
    out << "\n";
    const auto values = array.to_floats();
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < cols; ++c) out << (c ? "," : "") << fmt::format("{:.7g}", values[std::size_t(r * cols + c)]);
      out << "\n";
    }
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write the file", path));
  }
  file.commit();
}

}  // namespace strata::cli
