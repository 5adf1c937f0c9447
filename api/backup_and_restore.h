// keras.callbacks.BackupAndRestore: at the end of every epoch, fit() writes a checkpoint to backup_dir
// (latest.weights.h5: weights, optimizer state, and where training is: the next epoch, the shuffling
// generator, the step count that keys dropout); a later fit() with the same callback finds it and
// continues from there, so an interrupted run finishes with the weights an uninterrupted one reaches
// (bit for bit on the CPU backend, given the same program and seed). The checkpoint is written
// atomically and removed when training ends normally (unless delete_checkpoint is false).
#pragma once

#include <string>

#include "api/callbacks.h"

namespace strata {

struct BackupAndRestoreOptions {
  bool delete_checkpoint = true;
};

class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::string backup_dir, BackupAndRestoreOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;
  std::string checkpoint_path() const { return dir_ + "/latest.weights.h5"; }

 private:
  std::string dir_;
  BackupAndRestoreOptions options_;
};

}  // namespace strata
