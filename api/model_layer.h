// A model called on tensors inside another model, as Keras's model(x): the inner model's layers (and so
// its weights) are shared, and each call traces the inner graph again on the new inputs. Saved as Keras
// saves a nested model: its config as a layer entry, its weights under layers/<key>/layers/... in
// .weights.h5 files and as "<model>/<layer>/<weight>" in legacy ones.
#pragma once

#include "api/model.h"

namespace strata {

class ModelLayer : public LayerBase<ModelLayer> {
 public:
  explicit ModelLayer(Model& model);
  std::string class_name() const override { return class_name_; }
  Json get_config() const override { return config_; }
  std::vector<std::pair<VariablePtr, Regularizer>> weight_regularizers() const override;
  // {"class_name": "Sequential" | "Functional" | "Model", "config": ...}: the nested model's layer.
  static LayerPtr from_config(const std::string& class_name, const Json& config);
  const std::vector<LayerPtr>& layers() const { return layers_; }
  SavedVariableGroups saved_variable_groups() const override;
  std::string saved_weight_name(const Variable& weight) const override;
  std::string keras_module() const override;

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;

 private:
  std::string class_name_;
  Json config_;
  std::vector<Tensor> inputs_, outputs_;
  std::vector<LayerPtr> layers_;
};

// A model's layers traced again on new inputs (of another graph, or of other sizes): a chain of layers (a
// Sequential), or the calls recorded between a functional model's `inputs` and `outputs`, each of `layers`
// on the new tensors its call read. Returns the new outputs.
std::vector<Tensor> retrace_chain(const std::vector<LayerPtr>& layers, const Tensor& input);
std::vector<Tensor> retrace_calls(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const std::vector<LayerPtr>& layers,
                                  const std::vector<Tensor>& new_inputs, const std::string& model_name);

// Keras 3's key for each layer in a .weights.h5 file: its snake_case class name, numbered from the second
// occurrence on (dense, dense_1, ...), in model.layers order.
std::vector<std::string> keras3_layer_keys(const std::vector<LayerPtr>& layers);

}  // namespace strata
