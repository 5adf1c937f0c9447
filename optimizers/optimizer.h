// Optimizer state and the per-step update: hyperparameters, learning-rate schedule, per-variable slots.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include <nlohmann/json.hpp>

#include "graph/graph.h"
#include "graph/variable.h"

namespace strata {

// Keras's gradient clipping; at most one is set.
struct GradientClipping {
  std::optional<float> clipnorm;         // each gradient scaled to an L2 norm of at most this
  std::optional<float> clipvalue;        // each element clipped to [-clipvalue, clipvalue]
  std::optional<float> global_clipnorm;  // all gradients scaled together to a joint norm of at most this
};

// Keras's use_ema: the optimizer keeps an exponential moving average of each trained variable, which
// replaces the variable at the end of fit() (and every ema_overwrite_frequency steps when that is set).
struct MovingAverageOptions {
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};

// Throws std::invalid_argument, naming the key, on a momentum outside [0, 1] or a frequency below 1 while
// use_ema is on (Keras checks nothing while it is off).
void check_moving_average(const MovingAverageOptions& options);

class Optimizer {
 public:
  explicit Optimizer(OptimizerUpdate hyperparameters, float initial_accumulator_value = 0.1f);
  virtual ~Optimizer() = default;

  // Keras's class name and get_config() (the base reports its raw hyperparameters).
  virtual std::string class_name() const { return "Optimizer"; }
  virtual nlohmann::json get_config() const;

  const OptimizerUpdate& hyperparameters() const { return hyper_; }
  // A schedule maps the iteration count (starting at 0) to a learning rate, as Keras's schedules do.
  void set_learning_rate(float lr);
  void set_schedule(std::function<float(std::int64_t)> schedule) { schedule_ = std::move(schedule); }
  float learning_rate() const;
  void set_clipping(GradientClipping clipping);
  const GradientClipping& clipping() const { return clipping_; }
  // The gradients as the update sees them (clipped), traced once into the training graph.
  std::vector<Tensor> transform_gradients(std::vector<Tensor> gradients) const;
  // Before build() only (the averages are slots); throws on a momentum outside [0, 1] or a frequency below 1.
  void set_moving_average(MovingAverageOptions options);
  const MovingAverageOptions& moving_average() const { return ema_; }
  std::int64_t iterations() const { return iterations_; }
  void set_iterations(std::int64_t n) { iterations_ = n; }

  // Creates the slots of each variable on `backend` (once; later calls with the same variables do nothing).
  void build(const std::vector<VariablePtr>& variables, Backend& backend);
  const std::vector<VariablePtr>& variables() const { return variables_; }
  // Slots of variable i, in the order OptimizerUpdate documents.
  const std::vector<VariablePtr>& slots(std::size_t i) const { return slots_[i]; }
  // Variable i's moving average (its last slot) with use_ema, else null.
  VariablePtr moving_average_of(std::size_t i) const;
  // How many values the state holds, counted as Keras counts an optimizer's variables: the iteration
  // count, the learning rate unless a schedule gives it, running scalars (Nadam's momentum product) and
  // every slot; 0 before build() unless a restored state waits for it.
  std::int64_t state_size() const;

  // The state as Keras lists optimizer.variables, for the model's trainable weights in their order:
  // iterations, the learning rate (not with a schedule, as in Keras), the slots in Keras's creation order
  // (each build call's names interleaved per variable, calls in turn), then Nadam's momentum product. Empty
  // before build(), unless a restored state waits for it.
  struct StateValue {
    std::string name;  // Keras's name: "iteration", "learning_rate", "<weight path>_<slot>", "u_product"
    Shape shape;
    std::vector<float> values;
  };
  std::vector<StateValue> keras_state(const std::vector<VariablePtr>& model_weights) const;
  // Restores such a state (the same count, shapes and order; with or without the learning rate, which
  // tf.keras 2.11+ leaves out); slot values wait for build() when the slots do not exist yet. Throws naming
  // the first value that does not fit.
  void set_keras_state(const std::vector<VariablePtr>& model_weights, const std::vector<StateValue>& state);
  // Restores the state tf.keras 2 wrote before 2.11 (its OptimizerV2 classes), which the names describe:
  // "<Opt>/iter:0", scalars such as Nadam's "<Opt>/momentum_cache:0", and slots "<Opt>/<weight>/<slot>:0"
  // in Keras 2's spelling (m, v, vhat, rms, mg, accumulator, momentum), grouped by slot or interleaved per
  // weight; each slot's values follow the model's trainable weights. The learning rate is the config's.
  void set_keras2_state(const std::vector<VariablePtr>& model_weights, const std::vector<StateValue>& state);

  // One update of every built variable from its gradient; then iterations() grows by one.
  // Allocates nothing.
  void apply(Backend& backend, std::span<const TensorView> params, std::span<const TensorView> grads);

  // With use_ema: puts each variable's moving average into the variable, as Keras's
  // finalize_variable_values at the end of fit(); otherwise, or before build(), does nothing.
  void finalize_variable_values();
  // With use_ema: exchanges each variable's value with its moving average (keras.callbacks.SwapEMAWeights).
  void swap_moving_averages();
  // With use_ema: sets each moving average to its variable's value.
  void copy_variables_to_moving_averages();

 private:
  OptimizerUpdate hyper_;
  float initial_accumulator_;
  std::function<float(std::int64_t)> schedule_;
  GradientClipping clipping_;
  MovingAverageOptions ema_;
  std::int64_t iterations_ = 0;
  double nadam_u_product_ = 1.0;
  std::vector<VariablePtr> variables_;
  std::vector<std::vector<VariablePtr>> slots_;
  std::vector<std::vector<TensorView>> slot_views_;
  // Slot values restored before build(), per variable, in slot order.
  std::vector<std::pair<const Variable*, std::vector<std::vector<float>>>> pending_slots_;
  // Sets the iteration count, the learning rate (unless a schedule gives it), Nadam's product and every
  // slot (per model weight, in slot order), or keeps them until build() for weights not built yet.
  void commit_state(const std::vector<VariablePtr>& model_weights, std::int64_t iterations, std::optional<float> learning_rate,
                    double u_product, std::vector<std::vector<std::vector<float>>> per_weight);
};

}  // namespace strata
