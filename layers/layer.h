// The Layer base: Keras's surface. A layer takes its config in the constructor, creates its weights in
// build(input_shape) and says its forward computation with ops in call(); the engine does the rest.
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/variable.h"
#include "layers/constraints.h"
#include "layers/regularizers.h"

namespace strata {

using Json = nlohmann::json;

// The options every layer takes; layers with more keys have their own struct.
struct LayerOptions {
  std::string name;  // empty: a unique name from the class (dense, dense_1, ...)
  bool trainable = true;
};

// Where a layer's variables go in a Keras 3 .weights.h5 file: groups of consecutive weights, each under
// layers/<layer key>/<path> ("vars", or "cell/vars" for a recurrent layer's cell, ...).
using SavedVariableGroups = std::vector<std::pair<std::string, std::vector<VariablePtr>>>;

class Layer : public std::enable_shared_from_this<Layer> {
 public:
  virtual ~Layer() = default;
  Layer(Layer&&) = default;
  Layer& operator=(Layer&&) = default;

  virtual std::string class_name() const = 0;
  const std::string& name() const { return name_; }
  bool trainable() const { return trainable_; }
  // Freezes or unfreezes every weight of the layer, as setting layer.trainable in Keras.
  virtual void set_trainable(bool trainable);
  bool built() const { return built_; }

  // Keras's get_config(): name, trainable, dtype, then the layer's own keys.
  virtual Json get_config() const;
  // get_config() with the layer's regularizers and constraints, as Keras serializes the layer.
  Json full_config() const;

  // Keras's <key>_regularizer arguments ("kernel", "bias", "recurrent", "embeddings", "gamma", "beta",
  // "depthwise", "pointwise", "alpha"), for the keys the layer's config has; each adds its penalty on the
  // weight it names to the model's loss. Configs read by the registry attach theirs here.
  void set_regularizer(const std::string& key, const Regularizer& regularizer);
  const std::map<std::string, Regularizer>& regularizers() const { return regularizers_; }
  // The trainable weights that have a regularizer, with it: this layer's and the layers' it wraps.
  virtual std::vector<std::pair<VariablePtr, Regularizer>> weight_regularizers() const;
  // Keras's <key>_constraint arguments, for the same keys: the weight the key names carries the constraint,
  // which training applies after each optimizer update (null removes it).
  void set_constraint(const std::string& key, ConstraintPtr constraint);
  const std::map<std::string, ConstraintPtr>& constraints() const { return constraints_; }
  // Keras's activity_regularizer, which any layer takes: each call adds the penalty of each of its
  // outputs, divided by the batch size, to the loss of the model the call belongs to.
  void set_activity_regularizer(std::optional<Regularizer> regularizer) { activity_regularizer_ = std::move(regularizer); }
  const std::optional<Regularizer>& activity_regularizer() const { return activity_regularizer_; }

  // Applies the layer to a symbolic tensor and records the call, so that a Model can find it. A layer
  // that is not owned by a std::shared_ptr moves itself into one on its first call; later calls (on the
  // original object too) reach that one, so a layer called twice shares its weights. Keep a handle with
  // std::make_shared, or reach the layer through Model::get_layer, to read its weights afterwards.
  Tensor operator()(const Tensor& inputs);
  // A layer of several inputs (Add, Concatenate, ...), as Keras's layer([a, b]).
  Tensor operator()(const std::vector<Tensor>& inputs);
  // Keras's layer(inputs, **kwargs) in full: every output, for layers that return several (a recurrent
  // layer with return_state: the output, then its states; Bidirectional with merge_mode "none": both
  // halves; MultiHeadAttention with return_attention_scores), and the call's non-tensor keyword arguments
  // as a JSON object. Recorded as one call (one node of the model). operator() is this for one output.
  std::vector<Tensor> apply(const std::vector<Tensor>& inputs, const Json& call_arguments = Json::object());
  // The layer's forward computation on `inputs`, building it first if needed, without recording the call.
  // Each output gets the mask compute_mask() gives it, and the activity regularizer's penalty unless
  // `add_losses` is false (as Keras's layer.call() adds none).
  Tensor trace(const Tensor& inputs);
  Tensor trace(const std::vector<Tensor>& inputs);
  std::vector<Tensor> trace_all(const std::vector<Tensor>& inputs, const Json& call_arguments = Json::object(), bool add_losses = true);

  // Keras's serialized node of one call, {"args": [...], "kwargs": {...}}, from the serialized input
  // tensors and the call's arguments. By default one input is the only argument and several are one list
  // (merge layers); layers with keyword tensors (initial_state, key) override it.
  virtual Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const;
  // The keyword arguments whose tensors follow the positional ones in a serialized node, in that order.
  virtual std::vector<std::string> tensor_keywords() const { return {}; }
  // Keras 3's layout of this layer's variables in .weights.h5 files; by default every weight under "vars".
  virtual SavedVariableGroups saved_variable_groups() const { return {{"vars", weights_}}; }
  // A weight's name in legacy .h5 files ("dense/kernel"; a nested model prefixes its own name).
  virtual std::string saved_weight_name(const Variable& weight) const { return weight.name(); }
  // The module Keras serializes the class under.
  virtual std::string keras_module() const { return "keras.layers"; }

  // Weights in creation order (Keras's layer.weights), and the trainable / non-trainable subsets.
  const std::vector<VariablePtr>& weights() const { return weights_; }
  std::vector<VariablePtr> trainable_weights() const;
  std::vector<VariablePtr> non_trainable_weights() const;
  std::int64_t count_params() const;

  const Shape& input_shape() const { return input_shape_; }
  // The output shape of the most recent call (the batch dimension is -1); every output's for layers of
  // several outputs.
  const Shape& output_shape() const { return output_shapes_.empty() ? input_shape_ : output_shapes_[0]; }
  const std::vector<Shape>& output_shapes() const { return output_shapes_; }

  // This layer as a shared object (see operator()).
  std::shared_ptr<Layer> shared();

 protected:
  // `name` empty: a unique name from `prefix` (dense, dense_1, ...), as Keras names layers.
  Layer(const std::string& name, const std::string& prefix, bool trainable = true);

  // Creates the weights from the input shape (its first dimension is the unknown batch, -1).
  virtual void build(const Shape& input_shape);
  // The forward computation, with ops. Training-only behaviour goes through ops::in_train_phase/dropout.
  // A layer of one input overrides this; the default refuses (the layer takes a list).
  virtual Tensor call(const Tensor& inputs);
  // The same for a list of inputs; by default a list of one goes to build(shape) / call(tensor).
  virtual void build_multi(const std::vector<Shape>& input_shapes);
  virtual Tensor call_multi(const std::vector<Tensor>& inputs);
  // The full call: every output, with the call's non-tensor arguments. By default call_multi's one output;
  // arguments other than Keras's "training" and "mask" are refused.
  virtual std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments);
  // For a layer that unrolls over sizes its inputs leave unknown (a recurrent layer's steps): its outputs
  // as one ops::deferred node, their shapes found by tracing call_all at two stand-in sizes (what differs
  // between the two stays unknown). A Model traces the layer again at its data's sizes.
  std::vector<Tensor> deferred_call(const std::vector<Tensor>& inputs, const Json& call_arguments);
  // The call's boolean arguments named in `flags` (false when absent); any other argument but Keras's
  // "training" and "mask" (and nulls) is refused, naming the layer.
  std::map<std::string, bool> call_flags(const Json& call_arguments, std::initializer_list<const char*> flags = {}) const;
  // Masks: a layer that supports masking passes its first input's mask to its outputs (Dense, Dropout,
  // ...); others drop it, as Keras does. compute_mask() gives each output's mask (an invalid Tensor for
  // none); call() reads its inputs' masks with get_keras_mask().
  virtual bool supports_masking() const { return false; }
  virtual std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs);
  // A weight named "<layer>/<name>" filled by `initializer` (a name or a Keras initializer config).
  VariablePtr add_weight(const std::string& name, const Shape& shape, const Json& initializer, bool trainable = true);
  // The concrete layer moved into a new shared object.
  virtual std::shared_ptr<Layer> move_to_heap() = 0;
  // A wrapper (Bidirectional) lists the weights of the layers it owns as its own, in Keras's order.
  void track_weights(const std::vector<VariablePtr>& weights) { weights_.insert(weights_.end(), weights.begin(), weights.end()); }

 private:
  std::string name_;
  bool trainable_ = true;
  bool built_ = false;
  Shape input_shape_;
  std::vector<Shape> output_shapes_;
  std::vector<VariablePtr> weights_;
  std::map<std::string, Regularizer> regularizers_;
  std::map<std::string, ConstraintPtr> constraints_;
  std::optional<Regularizer> activity_regularizer_;
  std::shared_ptr<Layer> moved_to_;

  // The weights a regularizer or constraint key names (every match, e.g. each of MultiHeadAttention's kernels).
  std::vector<VariablePtr> weights_named_by(const std::string& key) const;

  static void record(const std::shared_ptr<Layer>& self, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
                     const Json& call_arguments);
};

using LayerPtr = std::shared_ptr<Layer>;

// The mask a tensor carries (1 where a step is valid, shaped like the tensor without its feature axis),
// or an invalid Tensor; set_keras_mask attaches one, as keras.backend's functions of the same names.
Tensor get_keras_mask(const Tensor& tensor);
void set_keras_mask(const Tensor& tensor, const Tensor& mask);

// Concrete layers derive from LayerBase<Self> so that a temporary layer can move itself onto the heap.
template <class Derived>
class LayerBase : public Layer {
 protected:
  using Layer::Layer;
  std::shared_ptr<Layer> move_to_heap() override {
    return std::make_shared<Derived>(std::move(static_cast<Derived&>(*this)));
  }
};

// A random layer's seed: the one it was given (Keras saves that in the config, null when none was) and the
// one it draws with, taken from the global seed when none was given.
class LayerSeed {
 public:
  explicit LayerSeed(std::optional<std::uint64_t> given) : given_(given), value_(given ? *given : next_random_seed()) {}
  std::uint64_t value() const { return value_; }
  Json config() const { return given_ ? Json(*given_) : Json(nullptr); }

 private:
  std::optional<std::uint64_t> given_;
  std::uint64_t value_;
};

// Shared helpers for layers' from_config: reading keys with clear errors.
namespace config {
// Throws naming the layer and the key when `config` holds a key outside `known` (plus the keys every
// layer has). Keys whose value is null (an unused regularizer, say) are accepted.
void check_keys(const Json& config, const std::string& class_name, std::initializer_list<const char*> known);
// The string under `key`; `fallback` when absent or null, and an error naming the layer and key otherwise.
std::string string_key(const Json& config, const char* key, const std::string& class_name, const char* fallback);
std::string name(const Json& config);
bool trainable(const Json& config);
// A shape such as [null, 28, 28] or [28, 28]; null becomes -1.
Shape shape(const Json& value, const std::string& what);
Json shape_to_json(const Shape& shape);
// Throws naming the layer when data_format is set to anything but channels_last.
void require_channels_last(const Json& config, const std::string& class_name);
// An int-or-tuple key (kernel_size, strides, ...) as `rank` values; `fallback` when absent or null.
std::vector<int> int_tuple(const Json& config, const char* key, int rank, std::vector<int> fallback);
// The number under `key`; `fallback` when absent or null, and an error naming the layer and key when there
// is no fallback or the value is not a number.
float number(const Json& config, const char* key, const std::string& class_name, std::optional<float> fallback = std::nullopt);
// A layer's random seed: the integer under "seed", unset when absent or null (drawn from the global seed).
std::optional<std::uint64_t> seed(const Json& config);
// An axis or a list of axes under `key` (Keras writes an int for one), or `fallback` when absent or null.
std::vector<int> axes(const Json& config, const char* key, const std::string& class_name, std::vector<int> fallback);
// The initializer under `key`, or `fallback` when absent or null.
Json initializer(const Json& config, const char* key, const char* fallback);
// Keras's dtype policy object for float32.
Json dtype_policy();
// A number or a nested list of numbers (or numpy's {"class_name": "__numpy__", ...} form), as Keras writes
// array-valued arguments such as Rescaling's scale or Normalization's mean.
struct NumberArray {
  Shape shape;  // () for a number
  std::vector<float> values;
};
NumberArray number_array(const Json& value, const std::string& what);
// The number, or nested lists of the array's shape.
Json number_array_to_json(const NumberArray& array);
}  // namespace config

}  // namespace strata
