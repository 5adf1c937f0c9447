// Model (functional: Input -> layers -> Model(inputs, outputs)) and Sequential, with Keras's compile, fit,
// evaluate, predict, train_on_batch, get/set_weights, get_layer and summary.
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "api/array.h"
#include "api/callbacks.h"
#include "api/losses.h"
#include "api/metrics.h"
#include "graph/graph.h"
#include "layers/input_layer.h"
#include "layers/layer.h"
#include "optimizers/optimizers.h"

namespace strata {

class Program;
enum class Mode : std::uint8_t;

// What compile() takes for an optimizer: a name ("adam", with Keras's defaults), a config, or an object.
class OptimizerRef {
 public:
  OptimizerRef(const char* name) : optimizer_(get_optimizer(name)) {}  // NOLINT: implicit on purpose
  OptimizerRef(const std::string& name) : optimizer_(get_optimizer(name)) {}  // NOLINT
  OptimizerRef(std::shared_ptr<Optimizer> o) : optimizer_(std::move(o)) {}  // NOLINT
  template <class O>
    requires std::derived_from<O, Optimizer>
  OptimizerRef(O o) : optimizer_(std::make_shared<O>(std::move(o))) {}  // NOLINT
  const std::shared_ptr<Optimizer>& get() const { return optimizer_; }

 private:
  std::shared_ptr<Optimizer> optimizer_;
};

struct CompileOptions {
  OptimizerRef optimizer = "rmsprop";
  LossRef loss = {};  // every output's, unless output_losses names another
  std::vector<MetricRef> metrics = {};
  std::string backend = "cpu";  // "cuda" runs the same model on the GPU
  // Models of several outputs, as Keras's dict forms, by output name (the name of the layer that makes
  // the output): each output's loss, its weight in the total loss (1 when not named) and its metrics.
  // Logs then hold "loss" (the weighted sum), "<output>_loss" and "<output>_<metric>".
  std::map<std::string, LossRef> output_losses = {};
  std::map<std::string, float> loss_weights = {};
  std::map<std::string, std::vector<MetricRef>> output_metrics = {};
};

struct ValidationData {
  std::vector<Array> x = {}, y = {};
  Array sample_weight = {};
};

struct FitOptions {
  int epochs = 1;
  int batch_size = 32;
  int verbose = 1;  // 0 silent, 1 progress bar, 2 one line per epoch
  std::vector<CallbackPtr> callbacks = {};
  double validation_split = 0.0;  // the last fraction of the samples, taken before shuffling
  std::optional<ValidationData> validation_data = {};
  bool shuffle = true;
  std::optional<std::uint64_t> shuffle_seed = {};  // unset: drawn from the global seed, as everything else
  std::map<int, float> class_weight = {};
  Array sample_weight = {};  // (samples,)
  int initial_epoch = 0;
};

struct EvaluateOptions {
  int batch_size = 32;
  int verbose = 1;
  Array sample_weight = {};
  std::vector<CallbackPtr> callbacks = {};
};

struct PredictOptions {
  int batch_size = 32;
  int verbose = 1;
  std::vector<CallbackPtr> callbacks = {};
};

namespace io::h5 {
class Group;
struct FloatArray;
}

struct LoadWeightsOptions {
  bool by_name = false;        // legacy .h5 only: match layers by name instead of by position
  bool skip_mismatch = false;  // skip layers whose weight count or shapes differ instead of failing
};

class Model {
 public:
  // A functional model from symbolic tensors: the layers called between them become the model's layers.
  Model(const Tensor& inputs, const Tensor& outputs, std::string name = "");
  Model(std::vector<Tensor> inputs, std::vector<Tensor> outputs, std::string name = "");
  Model(const Tensor& inputs, std::vector<Tensor> outputs, std::string name = "");
  Model(std::vector<Tensor> inputs, const Tensor& outputs, std::string name = "");
  virtual ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  virtual std::string class_name() const { return "Functional"; }
  const std::string& name() const { return name_; }
  const std::vector<LayerPtr>& layers() const { return layers_; }
  LayerPtr get_layer(const std::string& name) const;
  LayerPtr get_layer(int index) const;
  const std::vector<Tensor>& inputs();
  const std::vector<Tensor>& outputs();
  // Keras's model.output_names: the name of the layer that makes each output.
  std::vector<std::string> output_names();

  // The model called on tensors of another graph, as a layer (Keras's model(x)): its layers and weights
  // are shared. operator() is for models of one output; apply() returns every output.
  Tensor operator()(const Tensor& inputs);
  Tensor operator()(const std::vector<Tensor>& inputs);
  std::vector<Tensor> apply(const std::vector<Tensor>& inputs);
  // The layer that stands for this model inside others (made on first use).
  LayerPtr as_layer();

  // Every weight of every layer, in layer order; trainable ones; non-trainable ones.
  std::vector<VariablePtr> weights() const;
  std::vector<VariablePtr> trainable_weights() const;
  std::vector<VariablePtr> non_trainable_weights() const;
  std::int64_t count_params() const;
  std::vector<Array> get_weights() const;
  // Arrays in the order of get_weights(); a count or shape mismatch throws naming the weight and shapes.
  void set_weights(const std::vector<Array>& weights);

  void compile(CompileOptions options);
  void compile(OptimizerRef optimizer, LossRef loss, std::vector<MetricRef> metrics = {});
  bool compiled() const { return compiled_; }
  const std::shared_ptr<Optimizer>& optimizer() const { return options_.optimizer.get(); }
  const CompileOptions& compile_options() const { return options_; }

  History fit(const Array& x, const Array& y, FitOptions options = {});
  History fit(const std::vector<Array>& x, const std::vector<Array>& y, FitOptions options = {});
  // "loss" and each metric over the data.
  Logs evaluate(const Array& x, const Array& y, EvaluateOptions options = {});
  Logs evaluate(const std::vector<Array>& x, const std::vector<Array>& y, EvaluateOptions options = {});
  Array predict(const Array& x, PredictOptions options = {});
  std::vector<Array> predict(const std::vector<Array>& x, PredictOptions options = {});
  // A model whose inputs leave sizes unknown that a layer needs (a recurrent layer over sequences of any
  // length) is traced again, with its programs, for each new set of data sizes; it keeps those of the
  // kMaxTracedShapes sizes used last, so that predicting many lengths one at a time holds bounded memory.
  static constexpr std::size_t kMaxTracedShapes = 16;
  std::size_t traced_shapes() const { return traced_.size(); }
  // Weights in Keras's HDF5 layouts, chosen by the file name as Keras does: "*.weights.h5" is Keras 3's
  // (layers/<snake_case class name>/vars/<i>), "*.h5" / "*.hdf5" the legacy one (layer_names, a group per
  // layer with weight_names). Saving is atomic: a failed save leaves an earlier file as it was. Loading
  // matches layers by position (legacy files: or by name), reads a whole-model legacy file's
  // model_weights, and fails on a count or shape mismatch naming the layer and both shapes.
  void save_weights(const std::string& path);
  // save_weights with extra string attributes on the file's root (Keras ignores them).
  void save_weights(const std::string& path, const std::map<std::string, std::string>& root_attributes);
  void load_weights(const std::string& path, LoadWeightsOptions options = {});
  // The whole model as Keras saves it, by file name: "*.keras" is Keras 3's zip (config.json with
  // compile_config, metadata.json, model.weights.h5), "*.h5" the legacy HDF5 file (model_config,
  // training_config, model_weights). Atomic, as save_weights. load_model() reads either back.
  void save(const std::string& path);

  // Keras's model config: get_config() as model.get_config(), to_json() with the class name around it.
  Json get_config();
  Json to_json();

  // One optimizer step on one batch; the batch's loss and metrics.
  Logs train_on_batch(const Array& x, const Array& y, const Array& sample_weight = {});
  Logs test_on_batch(const Array& x, const Array& y, const Array& sample_weight = {});

  // Keras 3's summary table; line_length 0 takes Keras's default for the terminal.
  std::string summary_string(int line_length = 0);
  void summary(int line_length = 0, std::FILE* out = stdout);

  // Set by a callback to end fit() after the current epoch.
  bool stop_training = false;

  // Where the fit() in progress is, for checkpoints that resume it exactly (BackupAndRestore): the next
  // epoch, the state of the shuffling generator and the training program's run count, which keys
  // dropout's random masks. Valid from on_train_begin to on_train_end.
  struct TrainingProgress {
    int next_epoch = 0;
    std::string shuffle_state;
    std::int64_t program_steps = 0;
  };
  TrainingProgress training_progress() const;
  // Called from on_train_begin: the fit() in progress continues from `progress` instead of its start.
  void resume_training(const TrainingProgress& progress);

 protected:
  Model(std::string name, const std::string& prefix);
  // Makes inputs_/outputs_ available; a Sequential without an input shape takes it from `x`.
  virtual void ensure_graph(const std::vector<Array>* x);
  // Whether a functional model is a plain chain of layers (summarised like a Sequential).
  bool is_chain() const;
  // Forgets compiled programs (the graph changed).
  void invalidate();
  // Called by compile(): a model that owns its graph traces it again, so that layers see their current
  // trainable flags (a frozen BatchNormalization runs in inference mode), as Keras's compile does.
  virtual void retrace() {}

  std::string name_;
  std::vector<LayerPtr> layers_;
  std::vector<Tensor> inputs_, outputs_;
  std::vector<std::shared_ptr<InputLayer>> input_layers_;

 private:
  // Keras's training_config: loss, metrics and optimizer_config ("{}" when not compiled).
  Json training_config();
  void save_keras_archive(const std::string& path);
  std::vector<Optimizer::StateValue> optimizer_state() const;
  void restore_optimizer_state(std::vector<Optimizer::StateValue> state, const std::string& where);
  // The layers as Keras lists them in saved files (model.layers), built.
  std::vector<LayerPtr> layers_for_saving();
  void write_keras3_weights(io::h5::Group& root, const std::vector<LayerPtr>& layers) const;
  void write_legacy_weights(io::h5::Group& group, const std::vector<LayerPtr>& layers) const;
  void read_keras3_weights(const io::h5::Group& root, const std::vector<LayerPtr>& layers, LoadWeightsOptions options);
  void read_legacy_weights(const io::h5::Group& group, const std::vector<LayerPtr>& layers, LoadWeightsOptions options);

  // What programs are built from for data shaped like x: the model's own graph (inputs_, outputs_), or,
  // when a layer deferred its trace until sizes the inputs leave unknown are known (a recurrent layer over
  // sequences of any length), the model traced again at x's sizes, once per distinct set of them.
  struct Traced {
    std::vector<Shape> input_shapes;
    std::vector<Tensor> inputs, outputs;
    mutable std::uint64_t last_used = 0;
    mutable int pinned = 0;  // held by a running fit/evaluate/predict: never forgotten meanwhile
  };
  // Keeps `traced` (and the steps and programs built from it) while alive.
  class TracedPin {
   public:
    explicit TracedPin(const Traced& traced) : traced_(traced) { ++traced_.pinned; }
    ~TracedPin() { --traced_.pinned; }
    TracedPin(const TracedPin&) = delete;
    TracedPin& operator=(const TracedPin&) = delete;

   private:
    const Traced& traced_;
  };
  const Traced& traced_for(const std::vector<Array>& x);
  // Forgets the least recently used traced shapes (unpinned) until there is room for one more.
  void make_room_for_a_trace();
  struct Step;  // the training/evaluation program for one traced graph and set of target shapes
  Step& step_for(const std::vector<Array>& x, const std::vector<Array>& y);
  Program& predict_program(const Traced& traced);
  void check_inputs(const std::vector<Array>& x, const char* what);
  // What each input is fed as: its Input's dtype (arrays are converted, as Keras converts NumPy arrays).
  std::vector<DType> input_dtypes() const;
  Logs run_one_batch(Mode mode, const Array& x, const Array& y, const Array& sample_weight);
  Logs run_evaluation(Step& step, const std::vector<Array>& x, const std::vector<Array>& y, std::span<const float> weights,
                      std::span<const std::int64_t> rows, int batch_size, std::vector<CallbackPtr>& callbacks);

  CompileOptions options_;
  // fit()'s state that training_progress() reports.
  std::mt19937_64 shuffle_rng_;
  Program* fit_program_ = nullptr;
  int next_epoch_ = 0;
  std::optional<TrainingProgress> resume_from_;
  bool compiled_ = false;
  std::uint64_t seed_ = 0;
  std::vector<std::unique_ptr<Traced>> traced_;
  std::uint64_t trace_clock_ = 0;
  std::vector<std::unique_ptr<Step>> steps_;
  std::vector<std::pair<const Traced*, std::unique_ptr<Program>>> predict_programs_;
  LayerPtr as_layer_;
};

// A layer (moved or shared) or a keras.Input tensor, as Sequential's list takes them.
class LayerRef {
 public:
  template <class L>
    requires std::derived_from<std::remove_cvref_t<L>, Layer>
  LayerRef(L&& layer) : layer_(layer.shared()) {}  // NOLINT: implicit on purpose
  template <class L>
    requires std::derived_from<L, Layer>
  LayerRef(std::shared_ptr<L> layer) : layer_(std::move(layer)) {}  // NOLINT
  LayerRef(const Tensor& input);  // NOLINT: the InputLayer of a keras.Input tensor
  const LayerPtr& get() const { return layer_; }

 private:
  LayerPtr layer_;
};

class Sequential : public Model {
 public:
  Sequential(std::vector<LayerRef> layers = {}, std::string name = "");
  std::string class_name() const override { return "Sequential"; }
  // Appends a layer; an InputLayer first fixes the input shape.
  void add(LayerRef layer);
  void pop();

 protected:
  void ensure_graph(const std::vector<Array>* x) override;
  void retrace() override;

 private:
  Shape traced_shape_;  // the input shape of the last trace, kept for retracing a model built from data
  DType traced_dtype_ = DType::float32;
};

// A model from Keras's serialized config ({"class_name": "Sequential" | "Functional", "config": ...}),
// Keras 2 or 3, through the layer registry; its weights are freshly initialised.
std::unique_ptr<Model> model_from_json(const Json& serialized);

// A whole model saved by Keras or Strata ("*.keras" or legacy "*.h5"): architecture, weights and, with
// `compile`, the optimizer, loss and metrics it was compiled with. A .keras archive's members are
// checked before use (no names that leave the directory, no oversized or implausibly compressed members).
std::unique_ptr<Model> load_model(const std::string& path, bool compile = true);

}  // namespace strata
