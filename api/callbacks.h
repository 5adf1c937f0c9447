// Callbacks: hooks into fit/evaluate/predict with Keras's method names and logs; History; LambdaCallback;
// the progress bar (ProgbarLogger).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace strata {

class Model;

// Metric name -> value, as Keras's logs dict. Keys print in this (alphabetical) order.
using Logs = std::map<std::string, double>;

class Callback {
 public:
  virtual ~Callback() = default;
  void set_model(Model* model) { model_ = model; }
  Model* model() const { return model_; }
  // Set by fit() before on_train_begin.
  struct Params {
    int epochs = 0;
    std::int64_t steps = 0;
    int verbose = 1;
  };
  void set_params(Params p) { params_ = p; }
  const Params& params() const { return params_; }

  // Callbacks that only record (files, printed output) run in the chief process alone when fit() trains
  // across processes (distribution::DataParallel); the others run in every process, on the same logs.
  virtual bool chief_only() const { return false; }

  virtual void on_train_begin(const Logs&) {}
  virtual void on_train_end(const Logs&) {}
  virtual void on_epoch_begin(int /*epoch*/, const Logs&) {}
  virtual void on_epoch_end(int /*epoch*/, const Logs&) {}
  virtual void on_train_batch_begin(std::int64_t /*batch*/, const Logs&) {}
  virtual void on_train_batch_end(std::int64_t /*batch*/, const Logs&) {}
  virtual void on_test_begin(const Logs&) {}
  virtual void on_test_end(const Logs&) {}
  virtual void on_test_batch_begin(std::int64_t, const Logs&) {}
  virtual void on_test_batch_end(std::int64_t, const Logs&) {}
  virtual void on_predict_begin(const Logs&) {}
  virtual void on_predict_end(const Logs&) {}
  virtual void on_predict_batch_begin(std::int64_t, const Logs&) {}
  virtual void on_predict_batch_end(std::int64_t, const Logs&) {}

 private:
  Model* model_ = nullptr;
  Params params_;
};

using CallbackPtr = std::shared_ptr<Callback>;

// Every epoch's logs, as keras.callbacks.History: history["loss"][epoch_index].
class History : public Callback {
 public:
  std::vector<int> epoch;
  std::map<std::string, std::vector<double>> history;

  void on_train_begin(const Logs&) override { epoch.clear(); }
  void on_epoch_end(int e, const Logs& logs) override;
};

// Callbacks from functions, as keras.callbacks.LambdaCallback; unset ones do nothing.
class LambdaCallback : public Callback {
 public:
  std::function<void(int, const Logs&)> on_epoch_begin_fn, on_epoch_end_fn;
  std::function<void(std::int64_t, const Logs&)> on_train_batch_begin_fn, on_train_batch_end_fn;
  std::function<void(const Logs&)> on_train_begin_fn, on_train_end_fn;

  void on_epoch_begin(int e, const Logs& l) override { if (on_epoch_begin_fn) on_epoch_begin_fn(e, l); }
  void on_epoch_end(int e, const Logs& l) override { if (on_epoch_end_fn) on_epoch_end_fn(e, l); }
  void on_train_batch_begin(std::int64_t b, const Logs& l) override { if (on_train_batch_begin_fn) on_train_batch_begin_fn(b, l); }
  void on_train_batch_end(std::int64_t b, const Logs& l) override { if (on_train_batch_end_fn) on_train_batch_end_fn(b, l); }
  void on_train_begin(const Logs& l) override { if (on_train_begin_fn) on_train_begin_fn(l); }
  void on_train_end(const Logs& l) override { if (on_train_end_fn) on_train_end_fn(l); }
};

// Keras 3's progress bar. On a terminal it is redrawn in place with colours:
//   422/422 ━━━━━━━━━━━━━━━━━━━━ 3s 7ms/step - accuracy: 0.8512 - loss: 0.4210
// elsewhere (a file, a pipe) it prints only the finished line of each epoch, without colours. With
// one_line (verbose=2) it prints Keras's one-line summary at the end:
//   422/422 - 3s - 7ms/step - accuracy: 0.8512 - loss: 0.4210
class Progbar {
 public:
  Progbar(std::int64_t target, std::FILE* out, bool dynamic, bool one_line = false);
  void update(std::int64_t current, const Logs& logs, bool finalize);
  // Whether `out` is a terminal (STRATA_PROGBAR=dynamic / plain overrides).
  static bool is_dynamic(std::FILE* out);

 private:
  std::string line(std::int64_t current, const Logs& logs, bool finalize, bool colour) const;

  std::int64_t target_;
  std::FILE* out_;
  bool dynamic_, one_line_;
  std::chrono::steady_clock::time_point start_, last_update_, after_first_step_;
  bool have_first_step_ = false;
  std::size_t previous_width_ = 0;
};

// Prints "Epoch i/n" and a Progbar per epoch (verbose 1) or one summary line per epoch (verbose 2).
class ProgbarLogger : public Callback {
 public:
  explicit ProgbarLogger(std::FILE* out = stdout) : out_(out) {}
  void on_epoch_begin(int epoch, const Logs&) override;
  void on_train_batch_end(std::int64_t batch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_test_begin(const Logs&) override;
  void on_test_batch_end(std::int64_t batch, const Logs& logs) override;
  void on_test_end(const Logs& logs) override;
  void on_predict_begin(const Logs&) override;
  void on_predict_batch_end(std::int64_t batch, const Logs& logs) override;
  void on_predict_end(const Logs&) override;
  // Evaluation outside fit (evaluate/predict) shows a bar; inside fit it is silent.
  void set_in_fit(bool in_fit) { in_fit_ = in_fit; }
  void set_test_steps(std::int64_t steps) { test_steps_ = steps; }

 private:
  std::FILE* out_;
  std::unique_ptr<Progbar> bar_;
  bool in_fit_ = false;
  std::int64_t test_steps_ = 0;
};

}  // namespace strata
