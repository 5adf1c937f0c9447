// A compiled function of a traced graph: extracts the subgraph, derives the backward graph, plans buffers
// per input shape and runs the plan on a backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "graph/graph.h"
#include "optimizers/optimizer.h"

namespace strata {

enum class Mode : std::uint8_t { inference, training };

struct ProgramOptions {
  std::string backend = "cpu";
  std::uint64_t seed = 0;  // mixed into every random op's own seed
};

// Thrown by a run with check_numerics on: the message names the first layer (or loss, or optimizer
// update) whose output held a NaN or an infinity.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A debug mode, off by default (and on when the environment sets STRATA_CHECK_NUMERICS=1): every run
// checks the program's inputs and each primitive's outputs as they are computed, and stops at the first
// NaN or infinity with a NonFiniteError. Slow: every output is copied to the host and scanned.
void enable_check_numerics(bool on = true);
bool check_numerics_enabled();

// Data-parallel training's hook into a training run. gradient_ready() is called as each gradient becomes
// final during the backward pass (so that reducing it can start while later ones are computed); the
// reducer may read the view then but not write it. finish() comes after the whole backward pass and before
// gradient clipping and the optimizer, and leaves the reduced values in the views.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  virtual void gradient_ready(Backend& backend, int index, const TensorView& gradient) = 0;
  virtual void finish(Backend& backend, std::span<const TensorView> gradients) = 0;
};

struct PlanStats {
  std::size_t arena_bytes = 0;         // intermediates after lifetime-based reuse
  std::size_t intermediate_bytes = 0;  // the same without reuse
  int steps = 0;                       // primitive launches per run
};

class Program {
 public:
  // Inference only.
  Program(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, ProgramOptions options = {});
  // Training too: a training run differentiates `loss` (a scalar) with respect to every trainable variable
  // it reads and applies `optimizer`, then the constraints of the variables it updated (as Keras's
  // optimizer.apply does); then runs the graph's assign side effects.
  Program(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const Tensor& loss,
          std::shared_ptr<Optimizer> optimizer, ProgramOptions options = {});
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  Backend& backend() const { return *backend_; }
  // Trainable variables the loss depends on, in the order of their first use.
  const std::vector<VariablePtr>& trainable_variables() const { return trainable_; }

  // Runs once. Inputs are host tensors matching the placeholders (the unknown dimension is free). A plan is
  // built on the first run at each set of input shapes and reused after: later runs allocate nothing.
  void run(Mode mode, std::span<const TensorView> host_inputs);
  // Results of the last run.
  const Shape& output_shape(int index) const;
  void read_output(int index, void* host, std::size_t bytes) const;
  float read_scalar(int index) const;
  std::vector<float> read_output(int index) const;

  // Plans for these input shapes (if not yet planned) and describes the plan.
  PlanStats plan_stats(Mode mode, std::span<const Shape> input_shapes);
  std::int64_t steps_run() const { return step_counter_; }
  // Continues the run count (which keys random draws) from `steps`, as when resuming training.
  void set_steps_run(std::int64_t steps) { step_counter_ = steps; }
  // Training runs hand their gradients (in trainable_variables() order) to `reducer`; null: none.
  void set_gradient_reducer(std::shared_ptr<GradientReducer> reducer) { reducer_ = std::move(reducer); }

 private:
  struct Plan;
  void build(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const Tensor* loss);
  Plan& plan_for(Mode mode, std::span<const Shape> shapes);
  std::unique_ptr<Plan> make_plan(Mode mode, std::span<const Shape> shapes);
  void execute(Plan& plan);
  // check_numerics: throws NonFiniteError when `view` holds a NaN or infinity; `what` (called only then)
  // says whose it is.
  void check_finite(const TensorView& view, const std::function<std::string()>& what) const;
  std::string describe_node(int node) const;

  ProgramOptions options_;
  Backend* backend_;
  std::shared_ptr<Graph> graph_;
  int forward_nodes_ = 0;    // nodes from here on were derived by differentiation
  int transform_nodes_ = 0;  // and from here on transform gradients (clipping)
  std::vector<ValueId> inputs_, outputs_;
  ValueId loss_ = -1;
  std::vector<VariablePtr> trainable_;
  std::vector<ValueId> trainable_values_, gradient_values_;
  std::vector<ValueId> raw_gradient_values_;  // before clipping: what a GradientReducer reduces
  std::shared_ptr<GradientReducer> reducer_;
  std::shared_ptr<Optimizer> optimizer_;
  std::vector<std::unique_ptr<Plan>> plans_;
  // The constrained trainable variables and a program (no inputs) computing their projected values.
  std::vector<VariablePtr> constrained_;
  std::unique_ptr<Program> constraint_program_;
  Plan* last_plan_ = nullptr;
  std::int64_t step_counter_ = 0;
};

}  // namespace strata
