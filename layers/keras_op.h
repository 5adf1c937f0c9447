// A Keras 3 operation recorded in a functional model's config (keras.ops.add(x, 3.0), x * y, ops.mean(...),
// x[:, 0], ...: "module": "keras.src.ops.numpy" or "keras.src.ops.nn"), as one node of the model. Its
// positional arguments mix tensors and constants (1.0 - x); the node keeps them in order so that the
// config is written back as Keras wrote it.
#pragma once

#include <string>

#include "layers/layer.h"

namespace strata {

class KerasOp : public LayerBase<KerasOp> {
 public:
  // `op` is Keras's class name (Add, Mean, Relu, GetItem, ...), `params` its constructor's arguments.
  KerasOp(std::string module, std::string op, Json params, const std::string& name);
  std::string class_name() const override { return op_; }
  std::string keras_module() const override { return module_; }
  Json get_config() const override;
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  // Keras writes no variables group for an operation.
  SavedVariableGroups saved_variable_groups() const override { return {}; }

  // Whether a functional config's layer entry is a Keras operation.
  static bool is_op_entry(const Json& entry);
  // From such an entry; throws naming the node and the op when Strata does not compute it.
  static LayerPtr from_entry(const Json& entry);
  // The call arguments a serialized node gives the op: {"args": its positional arguments with each tensor
  // replaced by {"__tensor__": i}, i counting tensors in order}.
  static Json call_arguments_of(const Json& node, const std::string& name);

  // tf.keras 2's TFOpLambda and SlicingOpLambda entries ("function": "math.multiply", the arguments in each
  // node's keywords), read as the Keras 3 operation they compute (and written back as that).
  static bool is_tf_op_entry(const Json& entry);
  static LayerPtr from_tf_entry(const Json& entry);
  // One of such an entry's nodes ([[layer, node, tensor, keywords], ...]): the tensors it reads, as
  // [layer, node, tensor], and the call arguments for apply().
  static std::pair<std::vector<Json>, Json> tf_node(const Json& node, const KerasOp& op);
  // Such a node as a list of entries: one argument is written as its entry alone.
  static Json tf_node_entries(const Json& node);

 protected:
  void build_multi(const std::vector<Shape>&) override {}
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;

 private:
  std::string module_, op_;
  Json params_;
  std::string tf_function_;  // set when read from a TFOpLambda
};

}  // namespace strata
