#include "api/backup_and_restore.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <stdexcept>

#include "api/distribution.h"
#include "api/model.h"
#include "io/hdf5.h"

namespace strata {

namespace {
// The root attribute of the checkpoint that holds the training progress as JSON.
constexpr const char* kProgressAttribute = "strata_training_progress";
}  // namespace

BackupAndRestore::BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions options)
    : dir_(std::move(backup_dir)), options_(options) {
  if (dir_.empty()) throw std::invalid_argument("BackupAndRestore: backup_dir is empty");
}

void BackupAndRestore::on_train_begin(const Logs&) {
  const std::string path = checkpoint_path();
  if (!std::filesystem::exists(path)) return;
  nlohmann::json progress;
  {
    io::h5::File file = io::h5::File::open(path);
    if (!file.has_attribute(kProgressAttribute))
      throw std::runtime_error(fmt::format("{}: not a BackupAndRestore checkpoint (no {} attribute)", path, kProgressAttribute));
    try {
      progress = nlohmann::json::parse(file.string_attribute(kProgressAttribute));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(fmt::format("{}: unreadable training progress: {}", path, e.what()));
    }
  }
  model()->load_weights(path);
  Model::TrainingProgress p;
  p.next_epoch = progress.at("next_epoch").get<int>();
  p.shuffle_state = progress.at("shuffle_state").get<std::string>();
  p.program_steps = progress.at("program_steps").get<std::int64_t>();
  model()->resume_training(p);
}

void BackupAndRestore::on_epoch_end(int, const Logs&) {
  // Every process restores from the checkpoint; the chief alone writes it.
  if (const auto d = distribution::distribution(); d && !d->is_chief()) return;
  std::filesystem::create_directories(dir_);
  const Model::TrainingProgress p = model()->training_progress();
  const nlohmann::json progress = {{"next_epoch", p.next_epoch}, {"shuffle_state", p.shuffle_state}, {"program_steps", p.program_steps}};
  model()->save_weights(checkpoint_path(), {{kProgressAttribute, progress.dump()}});
}

void BackupAndRestore::on_train_end(const Logs&) {
  if (const auto d = distribution::distribution(); d && !d->is_chief()) return;
  if (options_.delete_checkpoint) std::filesystem::remove(checkpoint_path());
}

}  // namespace strata
