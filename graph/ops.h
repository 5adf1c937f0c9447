// Operations on symbolic tensors, named as in keras.ops. A custom layer is a forward computation written
// with these; gradients, memory and devices are the engine's job.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace strata {

// An operand of a binary op: a tensor, a variable (read in the other operand's graph) or a number.
class Operand {
 public:
  Operand(Tensor t) : tensor_(std::move(t)) {}            // NOLINT: implicit on purpose
  Operand(VariablePtr v) : variable_(std::move(v)) {}     // NOLINT
  Operand(float v) : number_(v) {}                        // NOLINT
  Operand(double v) : number_(float(v)) {}                // NOLINT
  Operand(int v) : number_(float(v)) {}                   // NOLINT

  // The operand as a value of `graph`.
  Tensor in(const std::shared_ptr<Graph>& graph) const;
  const Tensor* tensor() const { return tensor_.valid() ? &tensor_ : nullptr; }

 private:
  Tensor tensor_;
  VariablePtr variable_;
  std::optional<float> number_;
};

namespace ops {

// A placeholder fed at run time; -1 marks the unknown (batch) dimension. Joins default_graph().
Tensor placeholder(Shape shape, DType dtype = DType::float32, std::string name = "input");
// Reads `variable` in the graph of `like`.
Tensor variable(const VariablePtr& variable, const Tensor& like);
// A number broadcast to `shape` (fully known) in the graph of `like`.
Tensor constant(float value, const Tensor& like, Shape shape = Shape());
// A number broadcast to the shape of `like`, unknown batch included (keras.ops.full_like).
Tensor full_like(const Tensor& like, float value);

// ---- element-wise, with NumPy broadcasting ----
Tensor add(const Operand& a, const Operand& b);
Tensor subtract(const Operand& a, const Operand& b);
Tensor multiply(const Operand& a, const Operand& b);
Tensor divide(const Operand& a, const Operand& b);
Tensor power(const Operand& a, const Operand& b);
Tensor maximum(const Operand& a, const Operand& b);
Tensor minimum(const Operand& a, const Operand& b);
Tensor greater(const Operand& a, const Operand& b);
Tensor greater_equal(const Operand& a, const Operand& b);
Tensor less(const Operand& a, const Operand& b);
Tensor less_equal(const Operand& a, const Operand& b);
Tensor equal(const Operand& a, const Operand& b);
Tensor not_equal(const Operand& a, const Operand& b);
Tensor clip(const Tensor& x, float min_value, float max_value);

Tensor negative(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);

// ---- activations ----
Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor gelu(const Tensor& x, bool approximate = true);
Tensor elu(const Tensor& x, float alpha = 1.f);
Tensor selu(const Tensor& x);
Tensor softplus(const Tensor& x);
Tensor softsign(const Tensor& x);
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.2f);
Tensor silu(const Tensor& x);
Tensor swish(const Tensor& x);
Tensor hard_sigmoid(const Tensor& x);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);

// ---- linear algebra ----
// (..., m, k) x (k, n) folds the leading dimensions; (b..., m, k) x (b..., k, n) is a batched product.
Tensor matmul(const Operand& a, const Operand& b);

// ---- fused recurrent cells (sigmoid gates, tanh activation; see RnnCellOp) ----
// LSTM: z (batch, 4u) pre-activations of gates i, f, c, o and c_prev (batch, u) -> {h, c}.
std::array<Tensor, 2> lstm_cell(const Tensor& z, const Tensor& c_prev);
// GRU with the reset gate after the recurrent product: x (batch, 3u) input projections, r (batch, 3u)
// recurrent products with their bias, h_prev (batch, u) -> h.
Tensor gru_cell(const Tensor& x, const Tensor& r, const Tensor& h_prev);

// ---- reductions (axes empty: all) ----
Tensor sum(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor min(const Tensor& x, std::vector<int> axes = {}, bool keepdims = false);
Tensor argmax(const Tensor& x, int axis = -1);

// ---- shapes ----
// One -1 is inferred; the unknown batch dimension may only be absorbed by it. Several -1s keep x's unknown
// dimensions in order (expand_dims or squeeze of a (batch, steps, features) tensor of unknown steps).
Tensor reshape(const Tensor& x, std::vector<std::int64_t> new_shape);
// x reshaped to `new_shape`, whose -1s take `reference`'s unknown dimensions (the batch, a sequence's
// length) in order: (batch * steps, features) back into (batch, steps, features) for steps known only
// when the model runs. `reference` lends its shape, not its values.
Tensor reshape_like(const Tensor& x, std::vector<std::int64_t> new_shape, const Tensor& reference);
// x reshaped to `new_shape`, whose k-th -1 is x's k-th unknown dimension times scales[k]: an unknown dimension
// merged with known ones after it, as (batch, h, 2, w, 2, c) -> (batch, 2h, 2w, c) for h and w unknown.
Tensor reshape_scaled(const Tensor& x, std::vector<std::int64_t> new_shape, std::vector<std::int64_t> scales);
Tensor transpose(const Tensor& x, std::vector<int> axes = {});
Tensor expand_dims(const Tensor& x, int axis);
Tensor squeeze(const Tensor& x, int axis);
Tensor concatenate(const std::vector<Tensor>& xs, int axis = 0);
// Static slice; a size of -1 runs to the end of that dimension, and -1 - n to n short of it (the size of a
// dimension unknown until the model runs, less what is cropped from both of its ends).
Tensor slice(const Tensor& x, std::vector<std::int64_t> start_indices, std::vector<std::int64_t> shape);
// `count` equal pieces along `axis` (keras.ops.split with a number of sections): one node, whose gradient is
// one concatenation (slicing a tensor piece by piece would accumulate a full-size gradient per piece).
std::vector<Tensor> split(const Tensor& x, int count, int axis = 0);
// Outputs of these shapes (float32) whose computation waits until the unknown sizes of `inputs` are known:
// what a layer that unrolls over an unknown size returns when traced symbolically. A Model traces the layer
// again at its data's sizes; a Program refuses the node (OpKind::deferred).
std::vector<Tensor> deferred(const std::vector<Tensor>& inputs, std::vector<Shape> output_shapes);
// Zeros around x: pad_width[i] = {before, after} for dimension i (keras.ops.pad, constant mode).
Tensor pad(const Tensor& x, const std::vector<std::array<std::int64_t, 2>>& pad_width);
// keras.ops.take along one axis: table[..., indices, ...].
Tensor take(const Tensor& x, const Tensor& indices, int axis = 0);
// TensorFlow's gather with batch_dims: gather(x (B, C), i (B,), axis 1, batch_dims 1) picks x[b, i[b]].
Tensor gather(const Tensor& x, const Tensor& indices, int axis, int batch_dims);
Tensor cast(const Tensor& x, DType dtype);
Tensor stop_gradient(const Tensor& x);

// ---- convolution and pooling (channels_last) ----
// Rank-3 inputs (N, W, C) are 1-D, rank-4 (N, H, W, C) 2-D, rank-5 (N, D, H, W, C) 3-D (composed from 2-D ones,
// graph/volume_ops.h). Kernel (kw, in/groups, out), (kh, kw, in/groups, out) or (kd, kh, ...);
// groups = in / kernel's in. padding is "valid" or "same" (TensorFlow's rule: the odd pixel goes last).
Tensor conv(const Tensor& x, const Operand& kernel, std::vector<int> strides = {1}, const std::string& padding = "valid",
            std::vector<int> dilation_rate = {1});
// keras.ops.conv_transpose: the adjoint of conv. Kernel (kw, out, in), (kh, kw, out, in) or (kd, ...); output_padding empty
// takes Keras's default. Output size per axis: "valid" (in - 1) * stride + dilated kernel (+ output_padding);
// "same" in * stride, or (in - 1) * stride + dilated kernel % 2 + output_padding.
Tensor conv_transpose(const Tensor& x, const Operand& kernel, std::vector<int> strides = {1},
                      const std::string& padding = "valid", std::vector<int> output_padding = {},
                      std::vector<int> dilation_rate = {1});
// One axis of a transposed convolution: its output size (-1 for an unknown input size) and the padding before and
// after of the forward convolution whose adjoint it is (after may be negative: output rows past the last window
// receive nothing). output_padding -1: Keras's default.
struct TransposeAxis {
  std::int64_t size, pad_before, pad_after;
};
TransposeAxis transpose_axis(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                             const std::string& padding, std::int64_t output_padding);
Tensor max_pool(const Tensor& x, std::vector<int> pool_size, std::vector<int> strides = {},
                const std::string& padding = "valid");
Tensor average_pool(const Tensor& x, std::vector<int> pool_size, std::vector<int> strides = {},
                    const std::string& padding = "valid");

// ---- training-time behaviour ----
// Inverted dropout while training, identity otherwise; a fresh mask each step from (global seed, seed, step).
// noise_shape (empty: x's shape; -1: x's dimension) shares one draw along its dimensions of size 1, as
// SpatialDropout drops whole channels.
Tensor dropout(const Tensor& x, float rate, std::uint64_t seed = 0, std::vector<std::int64_t> noise_shape = {});
// Normal draws of x's shape (keras.random.normal), fresh each step from (global seed, seed, step) as dropout's
// masks. Not differentiable; wrap its use in in_train_phase for training-only noise.
Tensor random_normal_like(const Tensor& x, float mean, float stddev, std::uint64_t seed);
// Uniform draws in [low, high) of x's shape (keras.random.uniform), drawn as random_normal_like.
Tensor random_uniform_like(const Tensor& x, float low, float high, std::uint64_t seed);
// `training` while training, `inference` otherwise.
Tensor in_train_phase(const Tensor& training, const Tensor& inference);
// After each training step, `variable` takes `value` (moving statistics, counters).
void assign(const VariablePtr& variable, const Tensor& value);

}  // namespace ops
}  // namespace strata
