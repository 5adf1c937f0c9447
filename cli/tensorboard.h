// keras.callbacks.TensorBoard's epoch scalars: event files that TensorBoard reads, in log_dir/train and
// log_dir/validation ("epoch_loss", "epoch_accuracy", ...). Each file is a sequence of TFRecords (length,
// masked CRC32C of the length, an Event protobuf, masked CRC32C of it), starting with the file version.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "api/callbacks.h"

namespace strata::cli {

// CRC-32C (Castagnoli) of `data`, and TFRecord's masking of it.
std::uint32_t crc32c(std::string_view data);
std::uint32_t masked_crc32c(std::string_view data);

// Appends events to one file named events.out.tfevents.<seconds>.<host> in `directory`.
class EventWriter {
 public:
  explicit EventWriter(const std::string& directory);
  void scalar(const std::string& tag, double value, std::int64_t step);
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& bytes);
  std::string path_;
  std::ofstream out_;
};

class TensorBoard : public Callback {
 public:
  bool chief_only() const override { return true; }
  explicit TensorBoard(std::string log_dir = "logs") : log_dir_(std::move(log_dir)) {}
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::string log_dir_;
  std::unique_ptr<EventWriter> train_, validation_;
};

}  // namespace strata::cli
