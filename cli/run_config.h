// The strata command's YAML file: data, model, optimizer, loss, metrics and training, read into a
// compiled model and fit options. Errors say "config.yaml:LINE:COL: message".
//
//   data:
//     train: {x: train-images.gz, y: train-labels.gz, scale: 1/255}   # IDX or .npy files, or
//     test:  {csv: test.csv, features: [a, b], labels: [y]}           # CSV columns by name, or
//     validation: {h5: data.h5, x: /val/x, y: /val/y}                 # HDF5 datasets by path
//     validation_split: 0.1                                           # or validation: {...}
//     shuffle_seed: 7                                                 # the epochs' order alone
//   model:                                                            # a Sequential's layers, by
//     - Input: {shape: [28, 28]}                                      # Keras class name and config
//     - Dense: {units: 10, activation: softmax}
//   (or a functional graph: {inputs: [x], outputs: [y], layers: [{name: x, Input: {...}},
//    {name: y, Dense: {...}, inputs: [x]}]}, and loss: {y: mse} per output with loss_weights)
//   optimizer: adam                                                   # or {Adam: {learning_rate: 1e-3}}
//   loss: sparse_categorical_crossentropy
//   metrics: [accuracy]
//   training: {epochs: 10, batch_size: 128, shuffle: true, seed: 1}
//   callbacks:                                                        # Keras's, by class name
//     - EarlyStopping: {monitor: val_loss, patience: 2}
//     - ModelCheckpoint: {filepath: "ckpt-{epoch:02d}.keras"}         # paths relative to the output
//     - CSVLogger: {filename: log.csv}                                #   directory
//     - TerminateOnNaN: {}
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/strata.h"

namespace strata::cli {

// A bad config file (or option): the message names the file, line and column.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  Array x;
  std::vector<Array> y;  // one target array per model output
};

struct RunConfig {
  std::string path;
  std::unique_ptr<Model> model;  // compiled
  std::optional<Dataset> train, test, validation;
  double validation_split = 0.0;
  FitOptions fit;
  std::optional<std::uint64_t> seed;
};

// Reads `path` after applying `overrides` ("training.epochs=3": a dotted key path and a YAML value).
// Without load_data the data files are not read; callbacks write under output_dir.
RunConfig read_run_config(const std::string& path, const std::vector<std::string>& overrides, bool load_data = true,
                          const std::string& output_dir = ".");

}  // namespace strata::cli
