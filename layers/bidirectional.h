// Bidirectional(rnn): the recurrent layer over the steps and a copy of it over the steps reversed, merged
// by merge_mode ("concat" on the last axis, "sum", "mul" or "ave"). Weights: the forward layer's, then the
// backward layer's, as Keras orders them; with return_sequences the backward outputs are put back in step
// order, as Keras does.
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
  static LayerPtr from_config(const Json& config);
  const std::shared_ptr<Recurrent>& forward_layer() const { return forward_; }
  const std::shared_ptr<Recurrent>& backward_layer() const { return backward_; }

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;

 private:
  std::shared_ptr<Recurrent> forward_, backward_;
  std::string merge_mode_;
};

}  // namespace strata
