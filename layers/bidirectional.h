// Bidirectional(rnn): the recurrent layer over the steps and a copy of it over the steps reversed, merged
// by merge_mode ("concat" on the last axis, "sum", "mul" or "ave"; "none", Keras's None, returns both).
// Weights: the forward layer's, then the backward layer's, as Keras orders them; with return_sequences the
// backward outputs are put back in step order, as Keras does. With return_state the outputs are followed
// by the forward states, then the backward ones; initial states come the same way, after the sequence.
#pragma once

#include <concepts>

#include "layers/recurrent.h"

namespace strata {

struct BidirectionalOptions {
  std::string merge_mode = "concat";
  std::string name;
  bool trainable = true;
};

class Bidirectional : public LayerBase<Bidirectional> {
 public:
  // `layer` is a SimpleRNN, LSTM or GRU, used as a template: both halves are built from its config, as
  // forward_<name> and backward_<name> (go_backwards flipped).
  template <class L>
    requires std::derived_from<std::remove_cvref_t<L>, Recurrent>
  explicit Bidirectional(L&& layer, BidirectionalOptions options = {})
      : Bidirectional(std::static_pointer_cast<Recurrent>(layer.shared()), std::move(options)) {}
  explicit Bidirectional(const std::shared_ptr<Recurrent>& layer, BidirectionalOptions options = {},
                         const std::shared_ptr<Recurrent>& backward = nullptr);
  std::string class_name() const override { return "Bidirectional"; }
  Json get_config() const override;
  std::vector<std::pair<VariablePtr, Regularizer>> weight_regularizers() const override;
  static LayerPtr from_config(const Json& config);
  const std::shared_ptr<Recurrent>& forward_layer() const { return forward_; }
  const std::shared_ptr<Recurrent>& backward_layer() const { return backward_; }
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  std::vector<std::string> tensor_keywords() const override { return {"initial_state"}; }
  SavedVariableGroups saved_variable_groups() const override {
    return {{"forward_layer/cell/vars", forward_->weights()}, {"backward_layer/cell/vars", backward_->weights()}};
  }

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;

 private:
  std::shared_ptr<Recurrent> forward_, backward_;
  std::string merge_mode_;
};

}  // namespace strata
