// SimpleRNN, LSTM and GRU with Keras's weight layouts, gate orders and defaults, over (batch, steps,
// features) inputs with a known number of steps:
//   SimpleRNN  kernel (in, u), recurrent_kernel (u, u), bias (u)
//   LSTM       kernel (in, 4u), recurrent_kernel (u, 4u), bias (4u); gates i, f, c, o; unit_forget_bias
//   GRU        kernel (in, 3u), recurrent_kernel (u, 3u); gates z, r, h; bias (2, 3u) when reset_after
//              (the default: the recurrent bias and the reset gate apply after the recurrent product),
//              (3u) otherwise
// Recurrent kernels start orthogonal. With Keras's default activations an LSTM or GRU (reset_after) step is
// one fused cell primitive (ops::lstm_cell, ops::gru_cell) after the recurrent product. The output is the last state, or every step's with
// return_sequences; go_backwards reads the steps in reverse (and returns them in that order, as Keras).
// dropout drops input features and recurrent_dropout state units, each with one mask per sequence.
// return_state adds the final states as outputs (h, and c for LSTM); initial states come as extra inputs
// after the sequence (Keras's initial_state). A mask on the input (Embedding mask_zero, Masking) skips
// steps: a masked step keeps the states and repeats the previous output (zeros with zero_output_for_mask),
// as Keras's RNN does.
#pragma once

#include <functional>

#include "layers/layer.h"

namespace strata {

// Keras's RNN loop over a sequence's steps, shared by the recurrent layers. step(t, i, states) gives step t's
// new states (the first is its output; i counts the steps taken). A mask (batch, steps) skips steps: a
// masked step keeps the states and repeats the previous output (zeros with zero_output_for_mask).
// Returns the output (the last, or every step's along axis 1 with return_sequences), then the final states.
struct RecurrentLoop {
  bool go_backwards = false;
  bool return_sequences = false;
  bool zero_output_for_mask = false;
  bool outputs_in_input_order = false;  // with go_backwards: step t's output at position t (Bidirectional)
};
using RecurrentStep = std::function<std::vector<Tensor>(std::int64_t t, std::int64_t i, const std::vector<Tensor>& states)>;
std::vector<Tensor> run_recurrent_loop(std::int64_t steps, std::vector<Tensor> states, const Tensor& mask, const RecurrentLoop& loop,
                                       const RecurrentStep& step);

// What Keras's recurrent layers (and ConvLSTM) share besides the loop: the sequence output keeps the input's
// mask (the last output and the states have none); initial states are the call's "initial_state"; the loop's
// flags open the config.
std::vector<Tensor> recurrent_output_masks(const std::vector<Tensor>& inputs, std::size_t outputs, bool return_sequences);
Json recurrent_call_node(const std::vector<Json>& tensors);
void write_recurrent_flags(Json& config, const RecurrentLoop& loop, bool return_state);

enum class RecurrentKind : std::uint8_t { simple, lstm, gru };

struct RecurrentOptions {
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";  // LSTM and GRU
  bool use_bias = true;
  Json kernel_initializer = "glorot_uniform";
  Json recurrent_initializer = "orthogonal";
  Json bias_initializer = "zeros";
  bool unit_forget_bias = true;  // LSTM: the forget gate's bias starts at 1
  bool reset_after = true;       // GRU
  float dropout = 0.f;
  float recurrent_dropout = 0.f;
  bool return_sequences = false;
  bool return_state = false;
  bool go_backwards = false;
  bool zero_output_for_mask = false;
  std::optional<std::uint64_t> seed;
  std::string name;
  bool trainable = true;
};

class Recurrent : public Layer {
 public:
  Json get_config() const override;
  int units() const { return units_; }
  const VariablePtr& kernel() const { return kernel_; }
  const VariablePtr& recurrent_kernel() const { return recurrent_kernel_; }
  const VariablePtr& bias() const { return bias_; }
  // The number of state tensors: 2 for LSTM (h, c), 1 otherwise.
  int state_count() const { return kind_ == RecurrentKind::lstm ? 2 : 1; }
  RecurrentKind kind() const { return kind_; }
  Json call_node(const std::vector<Json>& tensors, const Json& call_arguments) const override;
  std::vector<std::string> tensor_keywords() const override { return {"initial_state"}; }
  // Keras keeps a recurrent layer's weights in its cell.
  SavedVariableGroups saved_variable_groups() const override { return {{"cell/vars", weights()}}; }

  const RecurrentOptions& options() const { return options_; }
  // With go_backwards and return_sequences, put step t's output at position t (Bidirectional's backward
  // half) instead of in processing order (Keras's RNN).
  void set_outputs_in_input_order(bool v) { outputs_in_input_order_ = v; }
  // Bidirectional zeroes masked steps' outputs when it returns sequences, as Keras's does.
  void set_zero_output_for_mask(bool v) { options_.zero_output_for_mask = v; }

 protected:
  Recurrent(RecurrentKind kind, int units, RecurrentOptions options, const char* prefix);
  void build_multi(const std::vector<Shape>& input_shapes) override;
  std::vector<Tensor> call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;
  static RecurrentOptions options_from_config(const Json& config, const std::string& class_name, RecurrentKind kind, int& units);

 private:
  // The recurrent weights as each step reads them, sliced once per call rather than once per step.
  struct StepWeights {
    Tensor recurrent_kernel;  // (u, gates * u)
    Tensor recurrent_bias;    // GRU with reset_after: (3u), else empty
    Tensor kernel_zr, kernel_h;  // GRU without reset_after: the recurrent kernel's (z, r) and h columns
  };
  // One step: the new state(s) from this step's input projection (with the input bias); h_in is h as the
  // recurrent product sees it (after recurrent dropout).
  Tensor step(const StepWeights& w, const Tensor& x_proj, Tensor& h, Tensor& c, const Tensor& h_in);
  // Whether a step is one fused cell primitive (LSTM, GRU with reset_after, Keras's default activations)
  // rather than a dozen element-wise nodes.
  bool fused_cell() const;

  RecurrentKind kind_;
  int units_;
  RecurrentOptions options_;
  LayerSeed seed_;
  bool outputs_in_input_order_ = false;
  VariablePtr kernel_, recurrent_kernel_, bias_;
};

#define STRATA_RECURRENT_LAYER(Class, kind, prefix)                                                           \
  class Class : public Recurrent {                                                                            \
   public:                                                                                                    \
    explicit Class(int units, RecurrentOptions options = {}) : Recurrent(kind, units, std::move(options), prefix) {} \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      int units = 0;                                                                                          \
      RecurrentOptions o = options_from_config(config, #Class, kind, units);                                 \
      return std::make_shared<Class>(units, o);                                                               \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_RECURRENT_LAYER(SimpleRNN, RecurrentKind::simple, "simple_rnn")
STRATA_RECURRENT_LAYER(LSTM, RecurrentKind::lstm, "lstm")
STRATA_RECURRENT_LAYER(GRU, RecurrentKind::gru, "gru")
#undef STRATA_RECURRENT_LAYER

// keras.layers.RNN around one of Keras's cells (SimpleRNNCell, LSTMCell or GRUCell): the same layer as
// SimpleRNN, LSTM or GRU (Keras builds those the same way), read and written as Keras's wrapper, the
// cell's own keys under "cell".
class RNN : public Recurrent {
 public:
  RNN(RecurrentKind kind, int units, RecurrentOptions options = {});
  std::string class_name() const override { return "RNN"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RNN>(std::move(*this)); }
};

}  // namespace strata
