// strata: train, evaluate, predict, summarise and convert Keras-compatible models from the command line.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "api/strata.h"
#include "cli/arrays.h"
#include "cli/history_files.h"
#include "cli/run_config.h"

namespace {

namespace fs = std::filesystem;
using namespace strata;
using namespace strata::cli;

constexpr int kFailed = 1;         // data, model or training failed while running
constexpr int kBadInput = 2;       // bad command line or config file
constexpr int kInterrupted = 130;  // Ctrl-C: the last epoch's checkpoint is kept for --resume

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// Ends fit() at the batch during which Ctrl-C came; the epoch checkpoint before it stays. Under mpirun
// the processes agree first, so that all stop at the same batch.
class StopOnInterrupt : public Callback {
 public:
  explicit StopOnInterrupt(std::shared_ptr<distribution::DataParallel> parallel) : parallel_(std::move(parallel)) {}
  void on_train_batch_end(std::int64_t, const Logs&) override {
    double interrupted = g_interrupted ? 1 : 0;
    if (parallel_) parallel_->allreduce_sum(&interrupted, 1);
    if (interrupted > 0) throw Interrupted();
  }

 private:
  std::shared_ptr<distribution::DataParallel> parallel_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int train(const std::string& config_path, std::vector<std::string> overrides, std::optional<int> epochs, std::optional<int> batch_size,
          std::optional<std::uint64_t> seed, const std::string& backend, std::string output_dir, bool resume) {
  if (epochs) overrides.push_back(fmt::format("training.epochs={}", *epochs));
  if (batch_size) overrides.push_back(fmt::format("training.batch_size={}", *batch_size));
  if (seed) overrides.push_back(fmt::format("training.seed={}", *seed));
  if (!backend.empty()) {
    try {
      get_backend(backend);
    } catch (const std::exception& e) {
      throw ConfigError(fmt::format("--backend {}: {}", backend, e.what()));
    }
    overrides.push_back(fmt::format("backend={}", backend));
  }
  // Under mpirun every process trains its shard of each batch; the chief (rank 0) prints and writes.
  std::shared_ptr<distribution::DataParallel> parallel;
  if (distribution::launched_processes() > 1) {
    parallel = std::make_shared<distribution::DataParallel>();
    distribution::set_distribution(parallel);
  }
  const bool chief = !parallel || parallel->is_chief();
  RunConfig c = read_run_config(config_path, overrides, true, output_dir);
  if (!c.train) throw ConfigError(fmt::format("{}: data.train is missing: nothing to train on", config_path));
  // Every epoch ends with a checkpoint in DIR/backup (removed when training completes), which --resume
  // continues from after Ctrl-C or a crash.
  const fs::path backup = fs::path(output_dir) / "backup";
  const bool has_backup = fs::exists(backup / "latest.weights.h5");
  if (has_backup && !resume)
    throw ConfigError(fmt::format("{}: an interrupted run's checkpoint is there; pass --resume to continue it, or remove it to start again",
                                  backup.string()));
  if (resume && !has_backup) throw ConfigError(fmt::format("--resume: no checkpoint in {}", backup.string()));
  if (chief) fs::create_directories(output_dir);  // callbacks (CSVLogger, ModelCheckpoint) write there while training
  c.fit.callbacks.push_back(std::make_shared<BackupAndRestore>(backup.string()));
  c.fit.callbacks.push_back(std::make_shared<StopOnInterrupt>(parallel));
  std::signal(SIGINT, on_interrupt);
  if (chief) c.model->summary();
  History history;
  try {
    history = c.model->fit(std::vector<Array>{c.train->x}, c.train->y, c.fit);
  } catch (const Interrupted&) {
    if (chief)
      fmt::print(stderr, "\nstrata: interrupted; {} keeps the last completed epoch: rerun with --resume to continue\n", backup.string());
    return kInterrupted;
  }
  if (!chief) return 0;  // the chief reports and writes the results
  if (const auto loss = history.history.find("loss"); loss != history.history.end() && !loss->second.empty() && !std::isfinite(loss->second.back())) {
    // A diverged run's weights are not worth keeping; an earlier run's results stay as they were.
    fmt::print(stderr, "strata: training stopped with a loss of {} in epoch {}; {}/model.h5 and the history were not written "
                       "(--check-numerics names the layer that first produced a non-finite value)\n",
               loss->second.back(), loss->second.size(), output_dir);
    return kFailed;
  }
  if (c.test) {
    const Logs logs = c.model->evaluate(std::vector<Array>{c.test->x}, c.test->y, {.batch_size = c.fit.batch_size, .verbose = 0});
    std::string line;
    for (const auto& [k, v] : logs) line += fmt::format("{}test_{}: {:.4f}", line.empty() ? "" : " - ", k, v);
    fmt::print("{}\n", line);
  }
  // The results only after a complete run, each replaced atomically: a run that fails leaves an earlier
  // run's model and history as they were (its checkpoint in DIR/backup is what --resume reads).
  c.model->save((fs::path(output_dir) / "model.h5").string());
  write_history_csv((fs::path(output_dir) / "history.csv").string(), history);
  write_history_svg((fs::path(output_dir) / "history.svg").string(), history);
  fmt::print("wrote {}/model.h5, history.csv, history.svg\n", output_dir);
  return 0;
}

std::unique_ptr<Model> load_any(const std::string& path) {
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) return std::move(read_run_config(path, {}, false).model);
  if (ends_with(path, ".weights.h5"))
    throw std::invalid_argument(fmt::format("{}: a weights-only file has no architecture; give a .keras or .h5 model file", path));
  return load_model(path);
}

int evaluate(const std::string& model_path, const std::string& config_path, const std::string& data_path, int batch_size) {
  auto model = load_model(model_path);
  Dataset data;
  if (!config_path.empty()) {
    RunConfig c = read_run_config(config_path, {});
    if (!c.test) throw ConfigError(fmt::format("{}: data.test is missing: nothing to evaluate on", config_path));
    data = std::move(*c.test);
    if (!model->compiled()) model->compile(c.model->compile_options());  // a weights-and-architecture file: the config's loss
  } else {
    if (!ends_with(data_path, ".csv")) throw ConfigError("--data takes a CSV file whose last column is the label");
    Array all = read_csv_columns(data_path, {});
    const std::int64_t cols = all.rows() > 0 ? all.size() / all.rows() : 0;
    const auto v = all.to_floats();
    std::vector<float> x, y;
    for (std::int64_t r = 0; r < all.rows(); ++r) {
      x.insert(x.end(), v.begin() + r * cols, v.begin() + (r + 1) * cols - 1);
      y.push_back(v[std::size_t((r + 1) * cols - 1)]);
    }
    data.x = Array::from_floats(x, {all.rows(), cols - 1});
    data.y = {Array::from_floats(y, {all.rows()})};
  }
  if (!model->compiled()) throw std::invalid_argument(fmt::format("{}: the model file has no training config (loss); give CONFIG.yaml", model_path));
  const Logs logs = model->evaluate(std::vector<Array>{data.x}, data.y, {.batch_size = batch_size, .verbose = 0});
  for (const auto& [k, v] : logs) fmt::print("{}: {:.6f}\n", k, v);
  return 0;
}

int predict(const std::string& model_path, const std::string& input, const std::string& output, int batch_size) {
  auto model = load_model(model_path, false);
  Array x = ends_with(input, ".csv") ? read_csv_columns(input, {}) : read_array_file(input);
  // A flat CSV feeds models of any input shape with as many values per sample.
  const Shape want = model->inputs()[0].shape();
  Shape sample{x.rows()};
  for (int d = 1; d < want.rank(); ++d) sample.push_back(want[d]);
  if (sample.is_fully_known() && sample.numel() == x.size() && sample != x.shape()) x = x.reshaped(sample);
  const Array y = model->predict(x, {.batch_size = batch_size, .verbose = 0});
  if (ends_with(output, ".csv")) write_csv(output, y);
  else if (ends_with(output, ".npy")) write_npy(output, y);
  else throw ConfigError(fmt::format("--output {}: the name must end in .npy or .csv", output));
  fmt::print("wrote {} ({} rows)\n", output, y.rows());
  return 0;
}

int convert(const std::string& in, const std::string& out) {
  auto model = load_any(in);
  if (ends_with(out, ".weights.h5")) model->save_weights(out);
  else model->save(out);
  fmt::print("wrote {}\n", out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: train, evaluate and use Keras-compatible models from a YAML file"};
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 success; 1 the run failed (data, model or training error); 2 bad command line or config file "
      "(the message names the file, line and column); 130 interrupted by Ctrl-C (train keeps a checkpoint for --resume).");

  std::string config, output_dir = "strata-output", backend;
  std::vector<std::string> overrides;
  std::optional<int> epochs, batch_size;
  std::optional<std::uint64_t> seed;
  auto* train_cmd = app.add_subcommand("train", "train the model a YAML file describes, then write DIR/model.h5, history.csv and history.svg");
  train_cmd->add_option("config", config, "the YAML file")->required();
  train_cmd->add_option("--epochs", epochs, "override training.epochs");
  train_cmd->add_option("--batch-size", batch_size, "override training.batch_size");
  train_cmd->add_option("--seed", seed, "override training.seed");
  train_cmd->add_option("--backend", backend, "cpu or cuda: override the config's backend (default cpu)");
  train_cmd->add_option("--output-dir", output_dir, "where the results go (default strata-output)");
  train_cmd->add_option("--set", overrides, "override any key: --set training.epochs=3 --set data.validation_split=0.2");
  bool resume = false, check_numerics = false;
  train_cmd->add_flag("--resume", resume, "continue an interrupted run from DIR/backup");
  train_cmd->add_flag("--check-numerics", check_numerics,
                      "check every op's output and stop at the first NaN or infinity, naming the layer (slow)");

  std::string model_path, data_path;
  int eval_batch = 32;
  auto* eval_cmd = app.add_subcommand("evaluate", "evaluate a model file on a config's test data, or on --data FILE.csv (label last)");
  eval_cmd->add_option("model", model_path, "a .keras or .h5 model")->required();
  eval_cmd->add_option("config", config, "the YAML file whose data.test is used");
  eval_cmd->add_option("--data", data_path, "a CSV file instead: features, then the label");
  eval_cmd->add_option("--batch-size", eval_batch, "batch size (default 32)");

  std::string input, output;
  int predict_batch = 32;
  auto* predict_cmd = app.add_subcommand("predict", "write a model's predictions for an .npy or .csv input");
  predict_cmd->add_option("model", model_path, "a .keras or .h5 model")->required();
  predict_cmd->add_option("--input", input, "X.npy or X.csv")->required();
  predict_cmd->add_option("--output", output, "Y.npy or Y.csv")->required();
  predict_cmd->add_option("--batch-size", predict_batch, "batch size (default 32)");

  std::string target;
  auto* summary_cmd = app.add_subcommand("summary", "print the summary table of a model file or a config's model");
  summary_cmd->add_option("model", target, "a .keras or .h5 model, or a YAML config")->required();

  std::string from, to;
  auto* convert_cmd = app.add_subcommand("convert", "convert between .keras, .h5 and .weights.h5");
  convert_cmd->add_option("input", from, "a .keras or .h5 model, or a YAML config")->required();
  convert_cmd->add_option("output", to, "a .keras, .h5 or .weights.h5 file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kBadInput;
  }
  try {
    if (check_numerics) enable_check_numerics();
    if (*train_cmd) return train(config, overrides, epochs, batch_size, seed, backend, output_dir, resume);
    if (*eval_cmd) {
      if (config.empty() == data_path.empty()) throw ConfigError("evaluate takes CONFIG.yaml or --data FILE.csv");
      return evaluate(model_path, config, data_path, eval_batch);
    }
    if (*predict_cmd) return predict(model_path, input, output, predict_batch);
    if (*summary_cmd) {
      load_any(target)->summary();
      return 0;
    }
    if (*convert_cmd) return convert(from, to);
  } catch (const ConfigError& e) {
    fmt::print(stderr, "strata: {}\n", e.what());
    return kBadInput;
  } catch (const std::exception& e) {
    fmt::print(stderr, "strata: {}\n", e.what());
    return kFailed;
  }
  return 0;
}
