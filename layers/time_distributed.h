// TimeDistributed(layer): the same layer (one set of weights) applied to every step of a
// (batch, steps, ...) input, as Keras's wrapper: the steps are folded into the batch around the call.
#pragma once

#include "layers/layer.h"

namespace strata {

class TimeDistributed : public LayerBase<TimeDistributed> {
 public:
  template <class L>
    requires std::derived_from<std::remove_cvref_t<L>, Layer>
  explicit TimeDistributed(L&& layer, LayerOptions options = {}) : TimeDistributed(layer.shared(), std::move(options)) {}
  explicit TimeDistributed(LayerPtr layer, LayerOptions options = {});
  std::string class_name() const override { return "TimeDistributed"; }
  Json get_config() const override;
  std::vector<std::pair<VariablePtr, Regularizer>> weight_regularizers() const override { return layer_->weight_regularizers(); }
  static LayerPtr from_config(const Json& config);
  const LayerPtr& layer() const { return layer_; }
  SavedVariableGroups saved_variable_groups() const override {
    SavedVariableGroups groups = layer_->saved_variable_groups();
    for (auto& group : groups) group.first = "layer/" + group.first;
    return groups;
  }

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  LayerPtr layer_;
};

}  // namespace strata
