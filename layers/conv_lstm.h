// ConvLSTM1D, ConvLSTM2D and ConvLSTM3D (channels_last): an LSTM whose input and recurrent products are
// convolutions, over (batch, steps, spatial..., channels) sequences, with Keras's layouts and defaults:
//   kernel (k..., channels, 4 * filters), recurrent_kernel (k..., filters, 4 * filters), bias (4 * filters);
//   gates i, f, c, o along the last axis; unit_forget_bias; the recurrent kernel starts orthogonal.
// The input convolution takes the layer's strides, padding and dilation; the recurrent one is stride 1,
// "same". The states are (batch, output spatial..., filters). As Keras's cell, dropout draws one input mask
// per gate and recurrent_dropout one state mask per gate, each kept over the sequence's steps. Sequences,
// final states, initial states, go_backwards and masks as the other recurrent layers (layers/recurrent.h).
#pragma once

#include "layers/conv.h"
#include "layers/layer.h"

namespace strata {

struct ConvLSTMOptions {
  IntTuple strides = 1;
  std::string padding = "valid";
  IntTuple dilation_rate = 1;
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool use_bias = true;
  Json kernel_initializer = "glorot_uniform";
  Json recurrent_initializer = "orthogonal";
  Json bias_initializer = "zeros";
  bool unit_forget_bias = true;
  float dropout = 0.f;
  float recurrent_dropout = 0.f;
  bool return_sequences = false;
  bool return_state = false;
  bool go_backwards = false;
  std::optional<std::uint64_t> seed;
  std::string name;
  bool trainable = true;
};

// The ConvLSTM of `rank` spatial dimensions; ConvLSTM1D, ConvLSTM2D and ConvLSTM3D name it.
class ConvLSTM : public Layer {
 public:
  Json get_config() const override;
  int filters() const { return filters_; }
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& recurrent_kernel() const { return recurrent_kernel_; }
  const VariablePtr& bias() const { return bias_; }
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  std::vector<std::string> tensor_keywords() const override { return {"initial_state"}; }
  // Keras keeps the weights in the layer's cell.
  SavedVariableGroups saved_variable_groups() const override { return {{"cell/vars", weights()}}; }

 protected:
  ConvLSTM(int rank, int filters, const IntTuple& kernel_size, ConvLSTMOptions options, const char* prefix);
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;
  static ConvLSTMOptions options_from_config(const Json& config, const std::string& class_name, int rank,
                                             std::vector<int>& kernel_size, int& filters);

 private:
  // z (batch, spatial..., 4 * filters) and c to the new (h, c).
  std::array<Tensor, 2> cell(const Tensor& z, const Tensor& c) const;

  int rank_, filters_;
  std::vector<int> kernel_size_, strides_, dilation_;
  ConvLSTMOptions options_;
  LayerSeed seed_;
  VariablePtr kernel_, recurrent_kernel_, bias_;
};

#define STRATA_CONV_LSTM_LAYER(Class, rank, prefix)                                                                   \
  class Class : public ConvLSTM {                                                                                      \
   public:                                                                                                             \
    Class(int filters, const IntTuple& kernel_size, ConvLSTMOptions options = {})                                     \
        : ConvLSTM(rank, filters, kernel_size, std::move(options), prefix) {}                                         \
    std::string class_name() const override { return #Class; }                                                        \
    static LayerPtr from_config(const Json& config) {                                                                 \
      std::vector<int> kernel_size;                                                                                    \
      int filters = 0;                                                                                                 \
      ConvLSTMOptions o = options_from_config(config, #Class, rank, kernel_size, filters);                            \
      return std::make_shared<Class>(filters, kernel_size, std::move(o));                                             \
    }                                                                                                                  \
                                                                                                                       \
   protected:                                                                                                          \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }              \
  };
STRATA_CONV_LSTM_LAYER(ConvLSTM1D, 1, "conv_lstm1d")
STRATA_CONV_LSTM_LAYER(ConvLSTM2D, 2, "conv_lstm2d")
STRATA_CONV_LSTM_LAYER(ConvLSTM3D, 3, "conv_lstm3d")
#undef STRATA_CONV_LSTM_LAYER

}  // namespace strata
