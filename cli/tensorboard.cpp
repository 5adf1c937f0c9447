#include "cli/tensorboard.h"

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "cli/tensorboard_event.pb.h"

namespace strata::cli {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// No Debian package provides CRC-32C (zlib's crc32 is the other polynomial): a table, reflected 0x82F63B78.
const std::array<std::uint32_t, 256>& crc_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::uint32_t crc32c(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = crc_table()[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(std::string_view data) {
  const std::uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& directory) {
  std::filesystem::create_directories(directory);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  path_ = fmt::format("{}/events.out.tfevents.{}.{}", directory, std::int64_t(now_seconds()), host);
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw std::runtime_error(fmt::format("TensorBoard: cannot write '{}'", path_));
  tensorboard::Event version;
  version.set_wall_time(now_seconds());
  version.set_file_version("brain.Event:2");
  record(version.SerializeAsString());
}

void EventWriter::record(const std::string& bytes) {
  auto little = [](std::uint64_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xFF);
    return s;
  };
  const std::string length = little(bytes.size(), 8);
  out_ << length << little(masked_crc32c(length), 4) << bytes << little(masked_crc32c(bytes), 4);
  out_.flush();
  if (!out_) throw std::runtime_error(fmt::format("TensorBoard: cannot write '{}'", path_));
}

void EventWriter::scalar(const std::string& tag, double value, std::int64_t step) {
  tensorboard::Event event;
  event.set_wall_time(now_seconds());
  event.set_step(step);
  tensorboard::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(float(value));
  record(event.SerializeAsString());
}

void TensorBoard::on_train_begin(const Logs&) {
  train_ = std::make_unique<EventWriter>(log_dir_ + "/train");
  validation_.reset();
}

void TensorBoard::on_epoch_end(int epoch, const Logs& logs) {
  for (const auto& [key, value] : logs) {
    if (key.rfind("val_", 0) == 0) {
      if (!validation_) validation_ = std::make_unique<EventWriter>(log_dir_ + "/validation");
      validation_->scalar("epoch_" + key.substr(4), value, epoch);
    } else {
      train_->scalar("epoch_" + key, value, epoch);
    }
  }
}

}  // namespace strata::cli
