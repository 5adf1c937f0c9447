// The strata command, run as a user runs it: every subcommand on a small CSV problem and the files it
// writes; one test per class of bad input, asserting the message, the exit status and that the output
// directory keeps what an earlier run wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "api/strata.h"
#include "cli/tensorboard_event.pb.h"
#include "io/hdf5.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status;
  std::string output;  // stdout and stderr
};

CliRun strata(const std::string& arguments) {
  // One log per test process: ctest runs the tests of this file side by side.
  const std::string log = ::testing::TempDir() + "strata_cli_" + std::to_string(::getpid()) + ".log";
  const int rc = std::system((std::string(STRATA_CLI) + " " + arguments + " > " + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text.str()};
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A directory with a CSV regression problem and a config for it.
class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::ofstream csv(dir_ / "data.csv");
    csv << "a,b,noise,y\n";
    for (int i = 0; i < 120; ++i) {
      const float a = u(rng), b = u(rng), n = u(rng);
      csv << a << "," << b << "," << n << "," << 2 * a - b << "\n";
    }
    write_config("config.yaml", "");
  }

  void write_config(const std::string& name, const std::string& replace_model) {
    std::ofstream(dir_ / name) << "data:\n"
                                  "  train: {csv: data.csv, features: [a, b], labels: y}\n"
                                  "  test: {csv: data.csv, features: [a, b], labels: y}\n"
                                  "  validation_split: 0.25\n"
                               << (replace_model.empty() ? "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 8, activation: tanh}\n  - Dense: {units: 1}\n"
                                                         : replace_model)
                               << "optimizer: {Adam: {learning_rate: 0.02}}\n"
                                  "loss: mse\n"
                                  "metrics: [mae]\n"
                                  "training: {epochs: 4, batch_size: 16, seed: 2}\n";
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, TrainWritesTheModelAndItsHistory) {
  const CliRun r = strata("train " + path("config.yaml") + " --output-dir " + path("out") + " --epochs 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("test_loss"), std::string::npos) << r.output;
  const std::string history = read_file(dir_ / "out" / "history.csv");
  EXPECT_EQ(history.substr(0, history.find('\n')), "epoch,loss,mae,val_loss,val_mae");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 4);  // header and --epochs 3
  const std::string svg = read_file(dir_ / "out" / "history.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("val_mae"), std::string::npos);
  // The model file is Keras's legacy HDF5 model: it loads, compiled, and predicts.
  auto model = load_model(path("out/model.h5"));
  EXPECT_TRUE(model->compiled());
  EXPECT_EQ(model->predict(Array::from_floats({0.5f, 0.5f}, {1, 2}), {.verbose = 0}).shape(), (Shape{1, 1}));
  // --set reaches any key.
  const CliRun more = strata("train " + path("config.yaml") + " --output-dir " + path("out2") + " --set training.epochs=2");
  ASSERT_EQ(more.status, 0) << more.output;
  const std::string two = read_file(dir_ / "out2" / "history.csv");
  EXPECT_EQ(std::count(two.begin(), two.end(), '\n'), 3);
}

TEST_F(Cli, EvaluatePredictSummaryAndConvert) {
  ASSERT_EQ(strata("train " + path("config.yaml") + " --output-dir " + path("out")).status, 0);
  const CliRun e = strata("evaluate " + path("out/model.h5") + " " + path("config.yaml"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("loss: "), std::string::npos);
  EXPECT_NE(e.output.find("mae: "), std::string::npos);

  std::ofstream(dir_ / "x.csv") << "a,b\n0.1,0.2\n0.9,0.3\n";
  const CliRun p = strata("predict " + path("out/model.h5") + " --input " + path("x.csv") + " --output " + path("y.csv"));
  ASSERT_EQ(p.status, 0) << p.output;
  auto model = load_model(path("out/model.h5"));
  const auto want = model->predict(Array::from_floats({0.1f, 0.2f, 0.9f, 0.3f}, {2, 2}), {.verbose = 0}).to_floats();
  std::ifstream y(dir_ / "y.csv");
  std::string header, row;
  std::getline(y, header);
  EXPECT_EQ(header, "column_0");
  for (float w : want) {
    std::getline(y, row);
    EXPECT_NEAR(std::stof(row), w, 1e-5);
  }
  const CliRun npy = strata("predict " + path("out/model.h5") + " --input " + path("x.csv") + " --output " + path("y.npy"));
  ASSERT_EQ(npy.status, 0) << npy.output;
  EXPECT_EQ(read_file(dir_ / "y.npy").substr(1, 5), "NUMPY");

  const CliRun s = strata("summary " + path("config.yaml"));
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find("Total params: 33"), std::string::npos) << s.output;
  for (const char* target : {"m.keras", "m.weights.h5", "m2.h5"}) {
    const CliRun c = strata("convert " + path("out/model.h5") + " " + path(target));
    ASSERT_EQ(c.status, 0) << c.output;
    EXPECT_TRUE(fs::exists(dir_ / target));
  }
  auto converted = load_model(path("m.keras"));
  EXPECT_EQ(converted->predict(Array::from_floats({0.1f, 0.2f, 0.9f, 0.3f}, {2, 2}), {.verbose = 0}).to_floats(), want);
}

// Each class of error: its message, exit status 2 (bad input) or 1 (failed run), and an untouched output.
TEST_F(Cli, ErrorsNameTheFileLineAndColumnAndClobberNothing) {
  ASSERT_EQ(strata("train " + path("config.yaml") + " --output-dir " + path("out")).status, 0);
  const std::string model_before = read_file(dir_ / "out" / "model.h5"), history_before = read_file(dir_ / "out" / "history.csv");
  struct Case {
    std::string model_yaml, extra, expected;
    int status;
  };
  const Case cases[] = {
      {"model:\n  - Input: {shape: [2]}\n  - Dence: {units: 1}\n", "", "bad.yaml:7:5: unknown layer 'Dence'; did you mean 'Dense'?", 2},
      {"model:\n  - Input: {shape: [2]}\n  - Dense: {units: 1, activaton: relu}\n", "", "bad.yaml:7:5: Dense: unknown or unsupported config key 'activaton'", 2},
      {"model:\n  - Input: {shape: [2]}\n  - Dense: {units: 1}\n", "--set training.epochs=many", "'epochs' must be an integer", 2},
      {"model:\n  - Input: {shape: [5]}\n  - Dense: {units: 1}\n", "", "expects shape (None, 5), got data of shape (120, 2)", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    write_config("bad.yaml", c.model_yaml);
    const CliRun r = strata("train " + path("bad.yaml") + " --output-dir " + path("out") + " " + c.extra);
    EXPECT_EQ(r.status, c.status) << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << r.output;
  }
  // An unknown top-level key, with a suggestion.
  std::ofstream(dir_ / "typo.yaml") << read_file(dir_ / "config.yaml") << "trainig: {epochs: 2}\n";
  const CliRun typo = strata("train " + path("typo.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(typo.status, 2);
  EXPECT_NE(typo.output.find("typo.yaml:13:1: unknown key 'trainig' in the config; did you mean 'training'?"), std::string::npos) << typo.output;
  // A missing data file.
  std::string text = read_file(dir_ / "config.yaml");
  text.replace(text.find("csv: data.csv"), 13, "csv: nowhere.csv");
  std::ofstream(dir_ / "missing.yaml") << text;
  const CliRun missing = strata("train " + path("missing.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.output.find("missing.yaml:2:16: csv: no such file"), std::string::npos) << missing.output;
  // A file that is not YAML, and a config that does not exist.
  std::ofstream(dir_ / "broken.yaml") << "model: [\n";
  EXPECT_EQ(strata("train " + path("broken.yaml")).status, 2);
  EXPECT_NE(strata("train " + path("absent.yaml")).output.find("absent.yaml: cannot open the file"), std::string::npos);
  // The earlier run's files are as they were.
  EXPECT_EQ(read_file(dir_ / "out" / "model.h5"), model_before);
  EXPECT_EQ(read_file(dir_ / "out" / "history.csv"), history_before);
  // The command line itself.
  EXPECT_EQ(strata("train").status, 2);
  EXPECT_EQ(strata("frobnicate").status, 2);
  EXPECT_NE(strata("--help").output.find("Exit status"), std::string::npos);
}

TEST_F(Cli, BackendFromTheConfigOrTheCommandLine) {
  // An unknown backend is refused at its line; --backend overrides the config's.
  std::ofstream(dir_ / "tpu.yaml") << read_file(dir_ / "config.yaml") << "backend: tpu\n";
  const CliRun tpu = strata("train " + path("tpu.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(tpu.status, 2) << tpu.output;
  EXPECT_NE(tpu.output.find("tpu.yaml:13:10: unknown backend 'tpu'; this build has: cpu"), std::string::npos) << tpu.output;
  const CliRun cpu = strata("train " + path("tpu.yaml") + " --backend cpu --output-dir " + path("out"));
  EXPECT_EQ(cpu.status, 0) << cpu.output;
  const auto names = available_backends();
  if (std::find(names.begin(), names.end(), "cuda") == names.end()) {
    // Without a GPU, asking for one says why it cannot be had (or that this build has no CUDA backend).
    const CliRun cuda = strata("train " + path("config.yaml") + " --backend cuda --output-dir " + path("out"));
    EXPECT_EQ(cuda.status, 2) << cuda.output;
    EXPECT_NE(cuda.output.find("backend 'cuda'"), std::string::npos) << cuda.output;
  } else {
    const CliRun cuda = strata("train " + path("config.yaml") + " --backend cuda --output-dir " + path("out_cuda"));
    EXPECT_EQ(cuda.status, 0) << cuda.output;
  }
}

TEST_F(Cli, CallbacksFromTheConfig) {
  std::ofstream(dir_ / "callbacks.yaml") << read_file(dir_ / "config.yaml")
                                        << "callbacks:\n"
                                           "  - EarlyStopping: {monitor: loss, patience: 1, min_delta: 1000}\n"
                                           "  - CSVLogger: {filename: log.csv}\n"
                                           "  - ModelCheckpoint: {filepath: \"ckpt-{epoch:02d}.keras\"}\n"
                                           "  - TerminateOnNaN\n"
                                           "  - ReduceLROnPlateau: {monitor: loss, patience: 1}\n"
                                           "  - LearningRateScheduler: {schedule: {ExponentialDecay: {initial_learning_rate: 0.02, decay_steps: 1, "
                                           "decay_rate: 0.9}}}\n";
  const CliRun r = strata("train " + path("callbacks.yaml") + " --output-dir " + path("out") + " --epochs 10");
  ASSERT_EQ(r.status, 0) << r.output;
  // No improvement of 1000 is possible: patience 1 stops after the second epoch.
  const std::string log = read_file(dir_ / "out" / "log.csv");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 3) << log;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "ckpt-01.keras"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "ckpt-02.keras"));
  std::ofstream(dir_ / "unknown.yaml") << read_file(dir_ / "config.yaml") << "callbacks:\n  - EarlyStoping: {}\n";
  const CliRun bad = strata("train " + path("unknown.yaml"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("unknown.yaml:14:5: unknown callback 'EarlyStoping'; did you mean 'EarlyStopping'?"), std::string::npos) << bad.output;
}

// A schedule as learning rate takes the short form {CosineDecay: {...}}, as optimizers and callbacks do.
TEST_F(Cli, LearningRateScheduleInShortForm) {
  std::string text = read_file(dir_ / "config.yaml");
  const std::string constant = "{Adam: {learning_rate: 0.02}}";
  text.replace(text.find(constant), constant.size(), "{Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.02, decay_steps: 20}}}}");
  std::ofstream(dir_ / "cosine.yaml") << text;
  const CliRun r = strata("train " + path("cosine.yaml") + " --output-dir " + path("out") + " --epochs 2");
  ASSERT_EQ(r.status, 0) << r.output;
  // 90 training rows in batches of 16: 12 steps, where the cosine from 0.02 over 20 steps stands at
  // 0.01 * (1 + cos(0.6 pi)).
  auto model = load_model(path("out/model.h5"));
  EXPECT_EQ(model->optimizer()->iterations(), 12);
  EXPECT_NEAR(model->optimizer()->learning_rate(), 0.01 * (1 + std::cos(0.6 * M_PI)), 1e-6);
}

// Ctrl-C keeps the last epoch's checkpoint; --resume then ends with the weights of an uninterrupted run.
TEST_F(Cli, InterruptedRunsResumeToTheSameWeights) {
  const std::string config = path("config.yaml") + " --epochs 2500 --set training.verbose=0";
  ASSERT_EQ(strata("train " + config + " --output-dir " + path("whole")).status, 0);
  const std::string cmd = "timeout --preserve-status -s INT 1 " + std::string(STRATA_CLI) + " train " + config + " --output-dir " + path("parts") +
                          " > /dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 130) GTEST_SKIP() << "the run ended before the interrupt (status " << rc << "): nothing to resume";
  ASSERT_TRUE(fs::exists(dir_ / "parts" / "backup" / "latest.weights.h5"));
  EXPECT_FALSE(fs::exists(dir_ / "parts" / "model.h5"));
  const CliRun again = strata("train " + config + " --output-dir " + path("parts"));
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.output.find("pass --resume to continue it"), std::string::npos) << again.output;
  const CliRun resumed = strata("train " + config + " --output-dir " + path("parts") + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  auto whole = load_model(path("whole/model.h5")), parts = load_model(path("parts/model.h5"));
  const Array x = Array::from_floats({0.1f, 0.2f, 0.9f, 0.3f, 0.5f, 0.5f}, {3, 2});
  EXPECT_EQ(parts->predict(x, {.verbose = 0}).to_floats(), whole->predict(x, {.verbose = 0}).to_floats());
}

// SIGKILL at random moments, most of them while ModelCheckpoint and the epoch backup are writing: every
// checkpoint on disk always loads and holds a completed epoch, and --resume after each kill ends with the
// weights of an uninterrupted run.
TEST_F(Cli, KilledRunsKeepLoadableCheckpointsAndResumeToTheSameWeights) {
  std::string text = read_file(dir_ / "config.yaml");
  text.replace(text.find("model:"), text.find("optimizer:") - text.find("model:"),
               "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 48, activation: tanh}\n  - Dense: {units: 48, activation: tanh}\n"
               "  - Dense: {units: 1}\n");
  std::ofstream(dir_ / "kill.yaml") << text << "callbacks:\n  - ModelCheckpoint: {filepath: last.keras}\n"
                                               "  - ModelCheckpoint: {filepath: last.h5}\n";
  const std::string config = path("kill.yaml") + " --epochs 200 --set training.verbose=0";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(strata("train " + config + " --output-dir " + path("whole")).status, 0);
  const double whole_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::int64_t steps_per_epoch = 6;  // 90 training rows in batches of 16

  auto checkpoints_load = [&](int kill) {
    for (const char* name : {"last.keras", "last.h5"}) {
      const fs::path p = dir_ / "parts" / name;
      if (!fs::exists(p)) continue;
      std::unique_ptr<Model> m;
      ASSERT_NO_THROW(m = load_model(p.string())) << "kill " << kill << ": " << p;
      EXPECT_EQ(m->optimizer()->iterations() % steps_per_epoch, 0) << "kill " << kill << ": " << p << " holds a part of an epoch";
    }
    const fs::path backup = dir_ / "parts" / "backup" / "latest.weights.h5";
    if (fs::exists(backup)) {
      auto m = load_model(path("whole/model.h5"));
      EXPECT_NO_THROW(m->load_weights(backup.string())) << "kill " << kill;
    }
  };

  std::mt19937 rng(11);
  // Eight kills within 0.96 of an uninterrupted run's time in all: the runs never reach their end first.
  std::uniform_real_distribution<double> when(0.02, 0.12);
  int kills = 0;
  bool finished = false;
  for (int attempt = 0; attempt < 8 && !finished; ++attempt) {
    const bool resume = fs::exists(dir_ / "parts" / "backup" / "latest.weights.h5");
    const std::string cmd = "exec " + std::string(STRATA_CLI) + " train " + config + " --output-dir " + path("parts") +
                            (resume ? " --resume" : "") + " > " + path("kill.log") + " 2>&1";
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(when(rng) * whole_seconds));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
      ASSERT_EQ(WEXITSTATUS(status), 0) << read_file(dir_ / "kill.log");
      finished = true;
      break;
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ++kills;
    checkpoints_load(kills);
  }
  EXPECT_GE(kills, 6) << "the runs ended before most kills: too little was tested";
  if (!finished) {
    const bool resume = fs::exists(dir_ / "parts" / "backup" / "latest.weights.h5");
    const CliRun last = strata("train " + config + " --output-dir " + path("parts") + (resume ? " --resume" : ""));
    ASSERT_EQ(last.status, 0) << last.output;
  }
  auto whole = load_model(path("whole/model.h5")), parts = load_model(path("parts/model.h5"));
  const Array x = Array::from_floats({0.1f, 0.2f, 0.9f, 0.3f, 0.5f, 0.5f}, {3, 2});
  EXPECT_EQ(parts->predict(x, {.verbose = 0}).to_floats(), whole->predict(x, {.verbose = 0}).to_floats());
  EXPECT_EQ(parts->optimizer()->iterations(), whole->optimizer()->iterations());
  // Temporaries of killed writers go when their target is next written.
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "parts"))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  std::printf("%d kills over an uninterrupted run of %.2f s\n", kills, whole_seconds);
}

// A run whose loss diverges fails without writing results; --check-numerics names where it began, and a
// batch too large for STRATA_MEMORY_LIMIT_MB fails before the first step.
TEST_F(Cli, NumericFaultsAndMemoryLimitsFailWithAMessage) {
  std::string text = read_file(dir_ / "config.yaml");
  text.replace(text.find("{Adam: {learning_rate: 0.02}}"), std::string("{Adam: {learning_rate: 0.02}}").size(), "{SGD: {learning_rate: 1.0e+30}}");
  std::ofstream(dir_ / "nan.yaml") << text << "callbacks:\n  - TerminateOnNaN: {}\n";
  const CliRun nan = strata("train " + path("nan.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(nan.status, 1);
  EXPECT_NE(nan.output.find("Invalid loss, terminating training"), std::string::npos) << nan.output;
  EXPECT_NE(nan.output.find("training stopped with a loss of inf in epoch 1"), std::string::npos) << nan.output;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "model.h5"));
  const CliRun checked = strata("train " + path("nan.yaml") + " --output-dir " + path("out") + " --check-numerics");
  EXPECT_EQ(checked.status, 1);
  EXPECT_NE(checked.output.find("check_numerics: 'mean_squared_error'"), std::string::npos) << checked.output;

  write_config("wide.yaml", "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 100000, activation: tanh}\n  - Dense: {units: 1}\n");
  const std::string wide = "train " + path("wide.yaml") + " --epochs 1 --set training.batch_size=90 --output-dir ";
  ::setenv("STRATA_MEMORY_LIMIT_MB", "64", 1);
  const CliRun capped = strata(wide + path("capped"));
  ::unsetenv("STRATA_MEMORY_LIMIT_MB");
  EXPECT_EQ(capped.status, 1);
  EXPECT_NE(capped.output.find("the training plan for inputs of shape (90, 2), (90,), (90,)"), std::string::npos) << capped.output;
  EXPECT_NE(capped.output.find("but only"), std::string::npos) << capped.output;
  EXPECT_EQ(capped.output.find("Epoch 1/1"), std::string::npos) << "training started: " << capped.output;
  const CliRun uncapped = strata(wide + path("uncapped"));
  EXPECT_EQ(uncapped.status, 0) << uncapped.output;
}

// Under mpirun two processes train as one; a run stopped part way resumes in one process to the weights an
// uninterrupted single process reaches (to float tolerance: the processes add gradient halves).
TEST_F(Cli, TrainsUnderMpirunAndResumesWithAnotherProcessCount) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun (Debian's openmpi-bin) is not installed";
  // detect_leaks=0 (sanitizer builds): Open MPI unloads its plugins before LeakSanitizer looks, so what
  // they keep until exit can be neither attributed nor suppressed.
  const std::string mpirun = "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:detect_leaks=0\" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                             "OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun -np 2 --oversubscribe ";
  const std::string config = path("config.yaml") + " --set training.verbose=0";
  ASSERT_EQ(strata("train " + config + " --output-dir " + path("one")).status, 0);
  const int rc = std::system((mpirun + STRATA_CLI + " train " + config + " --output-dir " + path("two") + " > " + path("two.log") + " 2>&1").c_str());
  ASSERT_EQ(rc, 0) << read_file(dir_ / "two.log");
  // The same history, to float tolerance (the processes add the gradients of their halves of each batch).
  std::stringstream one(read_file(dir_ / "one" / "history.csv")), two(read_file(dir_ / "two" / "history.csv"));
  std::string line_one, line_two;
  std::getline(one, line_one), std::getline(two, line_two);
  EXPECT_EQ(line_one, line_two);
  int rows = 0;
  for (; std::getline(one, line_one) && std::getline(two, line_two); ++rows) {
    std::stringstream ca(line_one), cb(line_two);
    for (std::string va, vb; std::getline(ca, va, ',') && std::getline(cb, vb, ',');)
      EXPECT_NEAR(std::stod(va), std::stod(vb), 1e-4 * (1 + std::abs(std::stod(vb)))) << line_one << " / " << line_two;
  }
  EXPECT_EQ(rows, 4);

  // Stopped part way under mpirun (which ends its processes on SIGINT), resumed in one process.
  const std::string long_run = path("config.yaml") + " --epochs 2000 --set training.verbose=0";
  ASSERT_EQ(strata("train " + long_run + " --output-dir " + path("whole")).status, 0);
  std::system(("timeout -s INT 2 sh -c '" + mpirun + STRATA_CLI + " train " + long_run + " --output-dir " + path("parts") + "' > /dev/null 2>&1").c_str());
  if (!fs::exists(dir_ / "parts" / "backup" / "latest.weights.h5")) GTEST_SKIP() << "the run ended before it was stopped, or before its first epoch";
  const CliRun resumed = strata("train " + long_run + " --output-dir " + path("parts") + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  auto whole = load_model(path("whole/model.h5")), parts = load_model(path("parts/model.h5"));
  const Array x = Array::from_floats({0.1f, 0.2f, 0.9f, 0.3f, 0.5f, 0.5f}, {3, 2});
  const auto a = parts->predict(x, {.verbose = 0}).to_floats(), b = whole->predict(x, {.verbose = 0}).to_floats();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4f * (1.f + std::abs(b[i])));
  EXPECT_EQ(parts->optimizer()->iterations(), whole->optimizer()->iterations());
}

// A functional graph in YAML: layers called on named layers' outputs, per-output losses and weights.
TEST_F(Cli, FunctionalGraphWithTwoOutputs) {
  std::ofstream(dir_ / "graph.yaml") << "data:\n"
                                        "  train: {csv: data.csv, features: [a, b], labels: y}\n"
                                        "model:\n"
                                        "  inputs: x\n"
                                        "  outputs: [main, aux]\n"
                                        "  layers:\n"
                                        "    - {name: x, Input: {shape: [2]}}\n"
                                        "    - {name: left, Dense: {units: 4, activation: tanh}, inputs: x}\n"
                                        "    - {name: right, Dense: {units: 4}, inputs: x}\n"
                                        "    - {name: both, Concatenate: {}, inputs: [left, right]}\n"
                                        "    - {name: main, Dense: {units: 1}, inputs: both}\n"
                                        "    - {name: aux, Dense: {units: 1}, inputs: left}\n"
                                        "loss: {main: mse, aux: mae}\n"
                                        "loss_weights: {aux: 0.5}\n"
                                        "training: {epochs: 2, seed: 1}\n";
  const CliRun s = strata("summary " + path("graph.yaml"));
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find("both (Concatenate)"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("right[0][0]"), std::string::npos) << s.output;
  // Two outputs need two target arrays: one label column is refused with the counts; a column per output
  // ({output: column}) trains, logging each output's loss.
  const CliRun r = strata("train " + path("graph.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("has 2 outputs, got 1 target arrays"), std::string::npos) << r.output;
  std::string two = read_file(dir_ / "graph.yaml");
  two.replace(two.find("labels: y"), 9, "labels: {main: y, aux: noise}");
  std::ofstream(dir_ / "two.yaml") << two;
  const CliRun ok = strata("train " + path("two.yaml") + " --output-dir " + path("out"));
  ASSERT_EQ(ok.status, 0) << ok.output;
  const std::string history = read_file(dir_ / "out" / "history.csv");
  EXPECT_EQ(history.substr(0, history.find('\n')), "epoch,aux_loss,loss,main_loss");
  std::string text = read_file(dir_ / "graph.yaml");
  text.replace(text.find("inputs: [left, right]"), 21, "inputs: [left, rigth]");
  std::ofstream(dir_ / "typo.yaml") << text;
  const CliRun typo = strata("summary " + path("typo.yaml"));
  EXPECT_EQ(typo.status, 2);
  EXPECT_NE(typo.output.find("typo.yaml:10:45: no layer named 'rigth' before this point; did you mean 'right'?"), std::string::npos) << typo.output;
}

// Data from datasets of an HDF5 file, by path.
TEST_F(Cli, DataFromAnHdf5File) {
  {
    io::h5::File f = io::h5::File::create(path("data.h5"));
    std::vector<float> x(40 * 2), y(40);
    for (int i = 0; i < 40; ++i) x[std::size_t(2 * i)] = float(i) / 40.f, x[std::size_t(2 * i + 1)] = 1.f - float(i) / 40.f, y[std::size_t(i)] = float(i % 2);
    f.write_floats("train/x", {40, 2}, x.data());
    f.write_floats("train/y", {40}, y.data());
    f.close();
  }
  std::ofstream(dir_ / "h5.yaml") << "data:\n  train: {h5: data.h5, x: /train/x, y: /train/y}\n"
                                     "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 1, activation: sigmoid}\n"
                                     "loss: binary_crossentropy\nmetrics: [accuracy]\ntraining: {epochs: 2}\n";
  const CliRun r = strata("train " + path("h5.yaml") + " --output-dir " + path("out"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string history = read_file(dir_ / "out" / "history.csv");
  EXPECT_EQ(history.substr(0, history.find('\n')), "epoch,accuracy,loss");
  std::ofstream(dir_ / "h5bad.yaml") << "data:\n  train: {h5: data.h5, x: /train/nothing, y: /train/y}\n"
                                        "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 1}\nloss: mse\n";
  const CliRun bad = strata("train " + path("h5bad.yaml") + " --output-dir " + path("out"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("h5bad.yaml:2:10:"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("nothing"), std::string::npos) << bad.output;
}

// CRC-32C bit by bit, independent of the writer's table.
std::uint32_t reference_crc32c(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

std::uint32_t little_u32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + std::size_t(i)]);
  return v;
}

// The event files: TFRecord framing and masked CRCs checked by a reader written here, the events decoded
// with protobuf, their scalars equal to history.csv; and read by TensorBoard itself when it is installed.
TEST_F(Cli, TensorBoardEventFiles) {
  std::ofstream(dir_ / "tb.yaml") << read_file(dir_ / "config.yaml") << "callbacks:\n  - TensorBoard: {log_dir: tb}\n";
  const CliRun r = strata("train " + path("tb.yaml") + " --output-dir " + path("out") + " --epochs 3");
  ASSERT_EQ(r.status, 0) << r.output;
  std::map<std::string, std::vector<float>> scalars;
  for (const char* sub : {"train", "validation"}) {
    int files = 0;
    for (const auto& entry : fs::directory_iterator(dir_ / "out" / "tb" / sub)) {
      ++files;
      EXPECT_EQ(entry.path().filename().string().rfind("events.out.tfevents.", 0), 0u);
      const std::string bytes = read_file(entry.path());
      std::size_t at = 0;
      int records = 0;
      auto masked = [](std::uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; };
      while (at < bytes.size()) {
        ASSERT_LE(at + 12, bytes.size());
        const std::string length_bytes = bytes.substr(at, 8);
        std::uint64_t length = 0;
        for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(length_bytes[std::size_t(i)]);
        EXPECT_EQ(little_u32(bytes, at + 8), masked(reference_crc32c(length_bytes)));
        ASSERT_LE(at + 12 + length + 4, bytes.size());
        const std::string data = bytes.substr(at + 12, length);
        EXPECT_EQ(little_u32(bytes, at + 12 + length), masked(reference_crc32c(data)));
        tensorboard::Event event;
        ASSERT_TRUE(event.ParseFromString(data));
        if (records == 0) EXPECT_EQ(event.file_version(), "brain.Event:2");
        for (const auto& v : event.summary().value()) {
          EXPECT_EQ(event.step(), std::int64_t(scalars[std::string(sub) + "/" + v.tag()].size()));
          scalars[std::string(sub) + "/" + v.tag()].push_back(v.simple_value());
        }
        at += 12 + length + 4;
        ++records;
      }
    }
    EXPECT_EQ(files, 1);
  }
  // The same numbers as history.csv (columns epoch, loss, mae, val_loss, val_mae).
  std::ifstream history(dir_ / "out" / "history.csv");
  std::string line;
  std::getline(history, line);
  for (std::size_t epoch = 0; std::getline(history, line); ++epoch) {
    std::stringstream cells(line);
    std::vector<double> v;
    for (std::string cell; std::getline(cells, cell, ',');) v.push_back(std::stod(cell));
    ASSERT_EQ(v.size(), 5u);
    EXPECT_NEAR(scalars["train/epoch_loss"].at(epoch), v[1], 1e-5 * std::max(1.0, v[1]));
    EXPECT_NEAR(scalars["validation/epoch_mae"].at(epoch), v[4], 1e-5 * std::max(1.0, v[4]));
  }
  // TensorBoard's own reader, when a Python with the tensorboard package is at hand.
  const char* env = std::getenv("STRATA_KERAS_PYTHON");
  const std::string python = env && *env ? env : "python3";
  if (std::system((python + " -c 'import tensorboard' > /dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "the tensorboard package is not installed: the event files were checked by the reader above only";
  const std::string script = path("read.py");
  std::ofstream(script) << "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
                           "ea = EventAccumulator('" << path("out/tb/train") << "'); ea.Reload()\n"
                           "values = [e.value for e in ea.Scalars('epoch_loss')]\n"
                           "assert len(values) == 3, values\n"
                           "print('tensorboard read', values)\n";
  EXPECT_EQ(std::system((python + " " + script).c_str()), 0);
}

TEST(CliConfigs, EveryShippedConfigReads) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(STRATA_CONFIGS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++seen;
    const CliRun r = strata("summary " + entry.path().string());
    EXPECT_EQ(r.status, 0) << entry.path() << ": " << r.output;
    EXPECT_NE(r.output.find("Total params"), std::string::npos) << r.output;
  }
  EXPECT_GE(seen, 4);
}

}  // namespace
}  // namespace strata
