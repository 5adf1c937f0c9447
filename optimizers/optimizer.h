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
  std::int64_t iterations() const { return iterations_; }
  void set_iterations(std::int64_t n) { iterations_ = n; }

  // Creates the slots of each variable on `backend` (once; later calls with the same variables do nothing).
  void build(const std::vector<VariablePtr>& variables, Backend& backend);
  const std::vector<VariablePtr>& variables() const { return variables_; }
  // Slots of variable i, in the order OptimizerUpdate documents.
  const std::vector<VariablePtr>& slots(std::size_t i) const { return slots_[i]; }
  // How many values the state holds, counted as Keras counts an optimizer's variables: the iteration
  // count, the learning rate, running scalars (Nadam's momentum product) and every slot; 0 before build.
  std::int64_t state_size() const;

  // The state as Keras lists optimizer.variables, for the model's trainable weights in their order:
  // iterations, learning rate, the slots in Keras's creation order (each build call's names interleaved per
  // variable, calls in turn), then Nadam's momentum product. Empty before build().
  struct StateValue {
    std::string name;  // Keras's name: "iteration", "learning_rate", "<weight path>_<slot>", "u_product"
    Shape shape;
    std::vector<float> values;
  };
  std::vector<StateValue> keras_state(const std::vector<VariablePtr>& model_weights) const;
  // Restores such a state (the same count, shapes and order); slot values wait for build() when the slots do
  // not exist yet. Throws naming the first value that does not fit.
  void set_keras_state(const std::vector<VariablePtr>& model_weights, const std::vector<StateValue>& state);

  // One update of every built variable from its gradient; then iterations() grows by one.
  // Allocates nothing.
  void apply(Backend& backend, std::span<const TensorView> params, std::span<const TensorView> grads);

 private:
  OptimizerUpdate hyper_;
  float initial_accumulator_;
  std::function<float(std::int64_t)> schedule_;
  GradientClipping clipping_;
  std::int64_t iterations_ = 0;
  double nadam_u_product_ = 1.0;
  std::vector<VariablePtr> variables_;
  std::vector<std::vector<VariablePtr>> slots_;
  std::vector<std::vector<TensorView>> slot_views_;
  // Slot values restored before build(), per variable, in slot order.
  std::vector<std::pair<const Variable*, std::vector<std::vector<float>>>> pending_slots_;
};

}  // namespace strata
