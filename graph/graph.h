// The traced graph: symbolic tensors (static shapes, batch dimension unknown) and nodes of backend primitives.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "graph/variable.h"

namespace strata {

enum class OpKind : std::uint8_t {
  input,           // a placeholder fed at run time
  parameter,       // a Variable's storage
  constant,        // a scalar value of fixed shape
  unary,           // backend unary
  unary_backward,  // inputs x, y, dy
  binary,          // backend binary with broadcasting
  matmul,          // inputs a, b; transposes in attrs
  reduce,          // over attrs.axes, keepdims in attrs
  argmax,
  softmax,           // attrs.axis, attrs.log
  softmax_backward,  // inputs y, dy
  sum_to,            // reduce a broadcast gradient back to the shape of input 1 (shape only); attrs.mean averages
  broadcast_like,    // broadcast input 0 to the shape of input 1 (shape only); attrs.mean divides by the count
  reshape,           // a view: no data moves
  transpose,
  slice,           // attrs.begin / attrs.size (size -1: to the end)
  slice_backward,  // zeros shaped like input 1 (shape only), input 0 copied into the slice
  pad,             // zeros around input 0: attrs.begin before and attrs.size after each dimension
  concat,
  split,        // attrs.count equal pieces along attrs.axis: one output per piece
  gather,       // table, indices; attrs.axis, attrs.batch_dims
  scatter_add,  // updates, indices, table (shape only): zeros shaped like table plus the scattered updates
  cast,
  conv2d,                  // x, kernel
  conv2d_backward_data,    // dy, kernel, x (shape only)
  conv2d_backward_filter,  // x, dy, kernel (shape only)
  conv2d_transpose,        // x, kernel: the adjoint of conv2d, output height and width in attrs.target
  pool2d,
  pool2d_backward,  // x, y, dy
  random_like,      // random numbers shaped like input 0 (shape only); a fresh draw every step
  in_train_phase,   // input 0 when training, input 1 otherwise (a view)
  stop_gradient,    // a view that autodiff does not cross
  assign,           // training side effect: attrs.variable <- input 0 at the end of the step
  rnn_cell,         // a fused recurrent cell step or its gradient: attrs.cell (operands as RnnCellOp says)
  deferred,         // a layer's outputs (attrs.output_shapes) traced only once its inputs' unknown sizes are
                    // known (a recurrent layer unrolls its steps): a Model traces it again then; never run
};
std::string_view op_kind_name(OpKind kind);

// Operation parameters; each kind reads the fields its comment names.
struct NodeAttrs {
  UnaryOp unary = UnaryOp::negative;
  BinaryOp binary = BinaryOp::add;
  ReduceOp reduce = ReduceOp::sum;
  PoolKind pool = PoolKind::max;
  RandomKind random = RandomKind::uniform;
  float alpha = 0.f, beta = 0.f;  // unary parameter; random a, b
  int axis = 0;
  int batch_dims = 0;
  int count = 0;  // split
  RnnCellOp cell = RnnCellOp::lstm;
  bool transpose_a = false, transpose_b = false;
  bool log = false;       // softmax
  bool keepdims = false;  // reduce
  bool mean = false;      // broadcast_like
  Shape axes;             // reduce, sum_to
  Shape target;           // reshape (-1: inferred), transpose permutation, conv2d_transpose output (h, w)
  Shape unknown_from;     // reshape with several -1: the input axis each -1 copies, in order
  Shape unknown_scale;    // reshape: what each -1 multiplies its copied dimension by (empty: 1s)
  Shape begin, size;      // slice; pad (before, after)
  Window2D window;        // conv2d, conv2d_transpose, pool2d
  // conv2d, pool2d and their gradients: "same" padding over a size unknown when traced (a stride above 1
  // makes it depend on the size); the plan computes window's padding from the concrete input.
  bool same_padding_at_plan = false;
  Scalar value;           // constant
  Shape constant_shape;   // constant
  DType dtype = DType::float32;  // cast, input, constant
  std::uint64_t seed = 0;        // random_like
  VariablePtr variable;          // parameter, assign
  std::vector<Shape> output_shapes;  // deferred (of dtype)
};

// TensorFlow's "same" padding (before, after) of one axis: the odd pixel goes last.
std::array<std::int64_t, 2> same_padding(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t dilation);
// A node's attributes with "same" padding deferred to the plan (same_padding_at_plan) resolved for the
// concrete shapes of its inputs; the attributes themselves otherwise.
NodeAttrs attrs_for_shapes(OpKind kind, const NodeAttrs& attrs, const std::vector<Shape>& input_shapes);

using ValueId = int;

struct Node {
  OpKind kind;
  NodeAttrs attrs;
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  std::string scope;  // the layer (or user scope) that created it, for error messages
};

struct ValueInfo {
  Shape shape;
  DType dtype = DType::float32;
  int producer = -1;  // node index
  std::string name;   // inputs only
};

// A call of a higher-level module (a layer) recorded while tracing: the module, opaque to the graph, and
// the values it read and produced. Models are rebuilt from these records.
struct ModuleCall {
  std::shared_ptr<void> module;
  std::vector<ValueId> inputs, outputs;
  std::string arguments;  // the call's other (non-tensor) arguments, serialized by the module
};

class Graph {
 public:
  std::span<const Node> nodes() const { return nodes_; }
  const Node& node(int i) const { return nodes_[std::size_t(i)]; }
  const ValueInfo& value(ValueId v) const { return values_[std::size_t(v)]; }
  int num_values() const { return int(values_.size()); }
  std::span<const int> side_effects() const { return side_effects_; }

  // Appends a node whose output shapes come from shape inference; returns its first output.
  ValueId add_node(OpKind kind, NodeAttrs attrs, std::vector<ValueId> inputs);
  ValueId add_input(std::string name, Shape shape, DType dtype);
  // The value that reads `variable` in this graph (one per variable, so that its gradients accumulate).
  ValueId add_parameter(const VariablePtr& variable);

  // Errors name the innermost scope, such as a layer's name.
  void push_scope(std::string name) { scopes_.push_back(std::move(name)); }
  void pop_scope() { scopes_.pop_back(); }
  std::string current_scope() const { return scopes_.empty() ? std::string() : scopes_.back(); }

  void record_call(ModuleCall call) { calls_.push_back(std::move(call)); }
  std::span<const ModuleCall> calls() const { return calls_; }

  // Losses that layers add while they are traced (Keras's add_loss, as activity regularizers use it): each
  // scalar penalty with the value it was computed from, so that a model counts those of its own calls.
  struct AddedLoss {
    ValueId source, penalty;
  };
  void add_loss(ValueId source, ValueId penalty) { added_losses_.push_back({source, penalty}); }
  std::span<const AddedLoss> added_losses() const { return added_losses_; }

  // Keras's mask metadata: a value may carry a mask (1 where a step is valid), computed in the same graph,
  // that layers aware of masks read (recurrent layers skip masked steps; losses ignore them).
  void set_mask(ValueId value, ValueId mask) { masks_[value] = mask; }
  ValueId mask(ValueId value) const {
    auto it = masks_.find(value);
    return it == masks_.end() ? -1 : it->second;
  }

 private:
  std::vector<Node> nodes_;
  std::vector<ValueInfo> values_;
  std::vector<int> side_effects_;
  std::vector<std::string> scopes_;
  std::unordered_map<const Variable*, ValueId> parameters_;
  std::vector<ModuleCall> calls_;
  std::vector<AddedLoss> added_losses_;
  std::unordered_map<ValueId, ValueId> masks_;
};

// A symbolic tensor: one value of one graph.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Graph> graph, ValueId id) : graph_(std::move(graph)), id_(id) {}

  bool valid() const { return graph_ != nullptr; }
  ValueId id() const { return id_; }
  Graph& graph() const { return *graph_; }
  const std::shared_ptr<Graph>& graph_ptr() const { return graph_; }
  const Shape& shape() const { return graph_->value(id_).shape; }
  DType dtype() const { return graph_->value(id_).dtype; }
  int rank() const { return shape().rank(); }

 private:
  std::shared_ptr<Graph> graph_;
  ValueId id_ = -1;
};

// Output shapes and dtypes of a node from its inputs'. Unknown (-1) dimensions propagate; known ones are
// checked, so the same function validates a trace and specialises a plan to concrete shapes.
struct ShapeAndType {
  Shape shape;
  DType dtype;
};
std::vector<ShapeAndType> infer_outputs(OpKind kind, const NodeAttrs& attrs, std::span<const ShapeAndType> inputs);

// Inputs read only for their shape: they do not keep a buffer alive and need not be computed.
bool is_shape_only_input(OpKind kind, int input_index);

// The graph that placeholders join when no graph is named: one per thread.
std::shared_ptr<Graph> default_graph();
// Starts a fresh default graph and restarts automatic names, as keras.utils.clear_session() does;
// existing tensors keep their graph.
void clear_session();

// Makes `graph` the thread's default graph until the scope ends (tracing a model into its own graph).
class GraphScope {
 public:
  explicit GraphScope(std::shared_ptr<Graph> graph);
  ~GraphScope();
  GraphScope(const GraphScope&) = delete;
  GraphScope& operator=(const GraphScope&) = delete;

 private:
  std::shared_ptr<Graph> previous_;
};

// `prefix` the first time, then prefix_1, prefix_2, ... (per thread, until clear_session()).
std::string unique_object_name(const std::string& prefix);

// The global seed, as keras.utils.set_random_seed: weight initializers, dropout and shuffling draw their
// seeds from it in order, so the same seed and the same program give the same numbers.
void set_random_seed(std::uint64_t seed);
// The next seed of the global sequence.
std::uint64_t next_random_seed();

// A scope that prefixes error messages of the ops traced inside it.
class NameScope {
 public:
  NameScope(Graph& g, std::string name) : g_(g) { g_.push_scope(std::move(name)); }
  ~NameScope() { g_.pop_scope(); }
  NameScope(const NameScope&) = delete;
  NameScope& operator=(const NameScope&) = delete;

 private:
  Graph& g_;
};

}  // namespace strata
