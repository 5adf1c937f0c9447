// Every gradient rule against central finite differences, through the whole path: trace, autodiff, plan,
// execute. The loss is sum(f(x) * w) with a random w. float32 with eps = 1e-2 (scaled by |x|): tolerance
// 2e-3 absolute + 2e-2 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <tuple>

#include "graph/autodiff.h"
#include "graph/einsum.h"
#include "graph/image_ops.h"
#include "graph/ops.h"
#include "graph/program.h"
#include "layers/attention.h"
#include "layers/batch_normalization.h"
#include "layers/bidirectional.h"
#include "layers/conv.h"
#include "layers/conv_lstm.h"
#include "layers/conv_transpose.h"
#include "layers/dense.h"
#include "layers/multi_head_attention.h"
#include "layers/recurrent.h"
#include "layers/time_distributed.h"
#include "layers/up_sampling.h"
#include "layers/zero_padding.h"
#include "optimizers/optimizers.h"
#include "test_util.h"

namespace strata::test {
namespace {

struct DiffInput {
  Shape shape;  // the first dimension may be -1 (batch): it is fed as `batch`
  std::vector<float> data;
};

struct FixedInput {
  Shape shape;
  DType dtype;
  std::vector<std::int32_t> ints;
};

using Builder = std::function<Tensor(const std::vector<Tensor>& diff, const std::vector<Tensor>& fixed)>;

Shape concrete(Shape s, std::int64_t batch) {
  for (int i = 0; i < s.rank(); ++i)
    if (s[i] < 0) s[i] = batch;
  return s;
}

// mode training: the graph's training branches (batch statistics, ...) are the function differentiated.
void check_gradients(std::vector<DiffInput> diff, std::vector<FixedInput> fixed, const Builder& f,
                     std::int64_t batch = 3, Mode mode = Mode::inference) {
  clear_session();
  std::vector<Tensor> xs, fs;
  for (std::size_t i = 0; i < diff.size(); ++i) xs.push_back(ops::placeholder(diff[i].shape, DType::float32, "x" + std::to_string(i)));
  for (std::size_t i = 0; i < fixed.size(); ++i) fs.push_back(ops::placeholder(fixed[i].shape, fixed[i].dtype, "i" + std::to_string(i)));
  const Tensor y = f(xs, fs);

  std::vector<TensorView> feeds;
  for (auto& d : diff) feeds.push_back(TensorView{d.data.data(), DType::float32, concrete(d.shape, batch)});
  for (auto& x : fixed) feeds.push_back(TensorView{x.ints.data(), x.dtype, concrete(x.shape, batch)});
  std::vector<Tensor> all_inputs = xs;
  all_inputs.insert(all_inputs.end(), fs.begin(), fs.end());

  // The concrete output shape decides the weights' shape.
  Program forward(all_inputs, {y});
  forward.run(Mode::inference, feeds);
  const Shape ys = forward.output_shape(0);
  Shape w_sym = ys;
  if (y.shape().rank() == ys.rank())
    for (int i = 0; i < ys.rank(); ++i)
      if (y.shape()[i] < 0) w_sym[i] = -1;
  const Tensor w = ops::placeholder(w_sym, DType::float32, "w");
  const Tensor loss = ops::sum(ops::multiply(y, w));
  std::vector<Tensor> outputs{loss};
  for (const Tensor& g : gradients(loss, xs)) outputs.push_back(g);
  all_inputs.push_back(w);
  // Training needs an optimizer; this one leaves the variables as they are.
  Program program = mode == Mode::training ? Program(all_inputs, outputs, loss, std::make_shared<SGD>(SGDOptions{.learning_rate = 0.f}))
                                           : Program(all_inputs, outputs);
  auto weights = random_vector(std::size_t(ys.numel()), -1, 1, 77);
  feeds.push_back(TensorView{weights.data(), DType::float32, ys});
  program.run(mode, feeds);

  std::vector<std::vector<float>> analytic;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    ASSERT_TRUE(outputs[i + 1].valid()) << "no gradient flows to input " << i;
    analytic.push_back(program.read_output(int(i) + 1));
  }
  for (std::size_t i = 0; i < diff.size(); ++i) {
    auto& data = diff[i].data;
    // At most 40 probes per input, spread over it.
    const std::size_t stride = std::max<std::size_t>(1, data.size() / 40);
    for (std::size_t j = 0; j < data.size(); j += stride) {
      const float orig = data[j];
      const float eps = 1e-2f * std::max(1.f, std::fabs(orig));
      data[j] = orig + eps;
      program.run(mode, feeds);
      const double up = program.read_scalar(0);
      data[j] = orig - eps;
      program.run(mode, feeds);
      const double down = program.read_scalar(0);
      data[j] = orig;
      const double numeric = (up - down) / (2.0 * double(eps));
      const double a = analytic[i][j];
      EXPECT_NEAR(a, numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << "input " << i << " element " << j;
    }
  }
}

DiffInput rnd(Shape s, std::uint32_t seed, std::int64_t batch = 3, float lo = -1.f, float hi = 1.f) {
  return DiffInput{s, random_vector(std::size_t(concrete(s, batch).numel()), lo, hi, seed)};
}
DiffInput away(Shape s, std::uint32_t seed, std::int64_t batch = 3) {
  return DiffInput{s, random_away_from_zero(std::size_t(concrete(s, batch).numel()), 0.1f, 2.f, seed)};
}

TEST(Gradients, UnaryActivations) {
  using F = Tensor (*)(const Tensor&);
  const std::pair<const char*, F> smooth[] = {
      {"negative", ops::negative}, {"exp", ops::exp},       {"erf", ops::erf},         {"square", ops::square},
      {"sigmoid", ops::sigmoid},   {"tanh", ops::tanh},     {"selu", ops::selu},       {"softplus", ops::softplus},
      {"softsign", ops::softsign}, {"silu", ops::silu},     {"hard_sigmoid", ops::hard_sigmoid},
      {"relu", ops::relu},         {"abs", ops::abs},       {"sin", ops::sin},         {"cos", ops::cos}};
  for (auto [name, fn] : smooth) {
    SCOPED_TRACE(name);
    check_gradients({away({-1, 5}, 1)}, {}, [fn](auto& x, auto&) { return fn(x[0]); });
  }
  const std::pair<const char*, F> positive[] = {
      {"log", ops::log}, {"log1p", ops::log1p}, {"sqrt", ops::sqrt}, {"rsqrt", ops::rsqrt}, {"reciprocal", ops::reciprocal}};
  for (auto [name, fn] : positive) {
    SCOPED_TRACE(name);
    check_gradients({rnd({-1, 5}, 2, 3, 0.5f, 2.f)}, {}, [fn](auto& x, auto&) { return fn(x[0]); });
  }
  check_gradients({away({-1, 5}, 3)}, {}, [](auto& x, auto&) { return ops::gelu(x[0], true); });
  check_gradients({away({-1, 5}, 4)}, {}, [](auto& x, auto&) { return ops::gelu(x[0], false); });
  check_gradients({away({-1, 5}, 5)}, {}, [](auto& x, auto&) { return ops::elu(x[0], 0.7f); });
  check_gradients({away({-1, 5}, 6)}, {}, [](auto& x, auto&) { return ops::leaky_relu(x[0], 0.3f); });
}

TEST(Gradients, BinaryWithBroadcasting) {
  using F = Tensor (*)(const Operand&, const Operand&);
  const std::pair<const char*, F> fns[] = {{"add", ops::add},         {"subtract", ops::subtract},
                                           {"multiply", ops::multiply}, {"divide", ops::divide},
                                           {"power", ops::power},     {"maximum", ops::maximum},
                                           {"minimum", ops::minimum}};
  for (auto [name, fn] : fns) {
    SCOPED_TRACE(name);
    // Positive operands keep power's log finite; distinct ranges keep maximum/minimum away from ties.
    check_gradients({rnd({-1, 4, 5}, 7, 3, 0.5f, 1.5f), rnd({4, 1}, 8, 3, 1.6f, 2.f)}, {},
                    [fn](auto& x, auto&) { return fn(x[0], x[1]); });
    check_gradients({rnd({-1, 5}, 9, 3, 1.6f, 2.f), rnd({5}, 10, 3, 0.5f, 1.5f)}, {},
                    [fn](auto& x, auto&) { return fn(x[0], x[1]); });
  }
  check_gradients({rnd({-1, 5}, 11)}, {}, [](auto& x, auto&) { return ops::multiply(ops::add(x[0], 2.f), 3.f); });
  // A value used twice: the gradients accumulate.
  check_gradients({rnd({-1, 5}, 12)}, {}, [](auto& x, auto&) { return ops::multiply(x[0], ops::tanh(x[0])); });
}

TEST(Gradients, Matmul) {
  check_gradients({rnd({-1, 6}, 13), rnd({6, 4}, 14)}, {}, [](auto& x, auto&) { return ops::matmul(x[0], x[1]); });
  // Folded leading dimensions: (batch, 3, 6) x (6, 4).
  check_gradients({rnd({-1, 3, 6}, 15), rnd({6, 4}, 16)}, {}, [](auto& x, auto&) { return ops::matmul(x[0], x[1]); });
  // Batched: (batch, 3, 6) x (batch, 6, 2).
  check_gradients({rnd({-1, 3, 6}, 17), rnd({-1, 6, 2}, 18)}, {},
                  [](auto& x, auto&) { return ops::matmul(x[0], x[1]); });
  // Transposed operands through the internal rule: x^T W^T.
  check_gradients({rnd({6, -1}, 19), rnd({4, 6}, 20)}, {}, [](auto& x, auto&) {
    return ops::matmul(ops::transpose(x[0]), ops::transpose(x[1]));
  });
}

TEST(Gradients, Reductions) {
  for (bool keep : {false, true}) {
    check_gradients({rnd({-1, 4, 5}, 21)}, {}, [keep](auto& x, auto&) { return ops::sum(x[0], {1}, keep); });
    check_gradients({rnd({-1, 4, 5}, 22)}, {}, [keep](auto& x, auto&) { return ops::mean(x[0], {0, 2}, keep); });
    check_gradients({rnd({-1, 4, 5}, 23)}, {}, [keep](auto& x, auto&) { return ops::max(x[0], {2}, keep); });
    check_gradients({rnd({-1, 4, 5}, 24)}, {}, [keep](auto& x, auto&) { return ops::min(x[0], {0}, keep); });
  }
  check_gradients({rnd({-1, 4}, 25)}, {}, [](auto& x, auto&) { return ops::mean(x[0]); });
}

TEST(Gradients, TiedExtremesShareTheGradient) {
  // Not differentiable at a tie; TensorFlow, JAX and torch.amax split the gradient evenly between the tied
  // elements (so GlobalMaxPooling over ReLU zeros trains as in Keras): [1, 3, 3, 2] -> [0, .5, .5, 0].
  for (const bool is_max : {true, false}) {
    clear_session();
    const Tensor x = ops::placeholder(Shape{-1, 4});
    const Tensor y = is_max ? ops::max(x, {1}) : ops::min(x, {1});
    Program program({x}, gradients(ops::sum(y), {x}));
    std::vector<float> data = is_max ? std::vector<float>{1, 3, 3, 2, 5, 5, 5, 0} : std::vector<float>{1, 0, 0, 2, 4, 4, 4, 9};
    const TensorView feed{data.data(), DType::float32, Shape{2, 4}};
    program.run(Mode::inference, std::span(&feed, 1));
    const auto g = program.read_output(0);
    const std::vector<float> want{0, 0.5f, 0.5f, 0, 1.f / 3, 1.f / 3, 1.f / 3, 0};
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(g[i], want[i], 1e-7) << (is_max ? "max " : "min ") << i;
  }
}

TEST(Gradients, SoftmaxFamily) {
  check_gradients({rnd({-1, 6}, 26, 3, -2, 2)}, {}, [](auto& x, auto&) { return ops::softmax(x[0]); });
  check_gradients({rnd({-1, 6}, 27, 3, -2, 2)}, {}, [](auto& x, auto&) { return ops::log_softmax(x[0]); });
  check_gradients({rnd({-1, 4, 3}, 28, 3, -2, 2)}, {}, [](auto& x, auto&) { return ops::softmax(x[0], 1); });
}

TEST(Gradients, ShapeOps) {
  SCOPED_TRACE("reshape");
  check_gradients({rnd({-1, 4, 3}, 29)}, {}, [](auto& x, auto&) { return ops::reshape(x[0], {-1, 12}); });
  SCOPED_TRACE("transpose");
  check_gradients({rnd({-1, 4, 3}, 30)}, {}, [](auto& x, auto&) { return ops::transpose(x[0], {2, 0, 1}); });
  SCOPED_TRACE("slice");
  check_gradients({rnd({-1, 6, 5}, 31)}, {}, [](auto& x, auto&) { return ops::slice(x[0], {0, 1, 2}, {-1, 3, 2}); });
  SCOPED_TRACE("concatenate");
  check_gradients({rnd({-1, 2}, 32), rnd({-1, 3}, 33)}, {},
                  [](auto& x, auto&) { return ops::concatenate({x[0], x[1], x[0]}, 1); });
  SCOPED_TRACE("pad");
  check_gradients({rnd({-1, 3, 4}, 38)}, {}, [](auto& x, auto&) { return ops::pad(x[0], {{0, 0}, {1, 2}, {0, 3}}); });
  SCOPED_TRACE("expand_dims, squeeze");
  check_gradients({rnd({-1, 4}, 34)}, {}, [](auto& x, auto&) { return ops::squeeze(ops::expand_dims(x[0], 1), 1); });
  SCOPED_TRACE("clip");
  // Keep the probes off the clip bounds, where a central difference straddles the kink.
  DiffInput clip_in = rnd({-1, 4}, 35);
  for (float& v : clip_in.data)
    if (std::fabs(std::fabs(v) - 0.5f) < 0.05f) v *= 0.8f;
  check_gradients({clip_in}, {}, [](auto& x, auto&) { return ops::clip(x[0], -0.5f, 0.5f); });
}

TEST(Gradients, GatherAndCast) {
  // Embedding-style lookup with repeated indices: gradients scatter and add up.
  check_gradients({rnd({5, 3}, 36)}, {FixedInput{{-1, 4}, DType::int32, {4, 0, 4, 2, 1, 1, 3, 0, 2, 2, 2, 0}}},
                  [](auto& x, auto& i) { return ops::take(x[0], i[0], 0); });
  // One entry per row (the shape of sparse categorical crossentropy).
  check_gradients({rnd({-1, 5}, 37)}, {FixedInput{{-1}, DType::int32, {4, 0, 2}}},
                  [](auto& x, auto& i) { return ops::gather(x[0], i[0], 1, 1); });
  // stop_gradient blocks the path entirely.
  clear_session();
  const Tensor x = ops::placeholder({-1, 5});
  EXPECT_FALSE(gradients(ops::sum(ops::stop_gradient(ops::square(x))), {x})[0].valid());
}

TEST(Gradients, AffineTransform) {
  // Linear in the images: the gradient is the sampling transposed (gather's scatter-add), including the
  // pixels that several samples read (reflected, wrapped, or a zoom in).
  const std::array<float, 8> transform{0.7f, -0.3f, 1.2f, 0.4f, 0.8f, -1.7f, 0.f, 0.f};
  auto transform_in = [transform](const Tensor& like) {
    std::vector<Tensor> parts;
    for (float v : transform) parts.push_back(ops::constant(v, like, Shape{1, 1}));
    return ops::concatenate(parts, 1);
  };
  std::uint32_t seed = 90;
  for (const auto& [interpolation, fill_mode] : {std::pair{"bilinear", "reflect"}, {"bilinear", "constant"}, {"bilinear", "mirror"},
                                                 {"nearest", "wrap"}, {"nearest", "nearest"}}) {
    SCOPED_TRACE(std::string(interpolation) + " " + fill_mode);
    check_gradients({rnd({-1, 4, 5, 2}, ++seed)}, {}, [&](auto& x, auto&) {
      return ops::image::affine_transform(x[0], transform_in(x[0]), interpolation, fill_mode, 0.5f);
    });
  }
}

TEST(Gradients, Resize) {
  // Linear in the images: each axis's interpolation matrix transposed, or the nearest gather's scatter-add.
  std::uint32_t seed = 95;
  for (const auto& [interpolation, antialias, h, w] : {std::tuple{"bilinear", false, 7, 3}, {"bilinear", true, 2, 3}, {"bicubic", false, 5, 8},
                                                        {"lanczos3", true, 3, 4}, {"nearest", false, 7, 2}}) {
    SCOPED_TRACE(std::string(interpolation) + (antialias ? " antialias" : ""));
    check_gradients({rnd({-1, 4, 5, 2}, ++seed)}, {}, [&](auto& x, auto&) {
      return ops::image::resize(x[0], h, w, {.interpolation = interpolation, .antialias = antialias});
    });
  }
}

TEST(Gradients, ConvolutionAndPooling) {
  // 2-D: stride 1 valid, stride 2 same, dilation 2, grouped.
  check_gradients({rnd({-1, 6, 5, 2}, 39), rnd({3, 3, 2, 3}, 40)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {1}, "valid"); });
  check_gradients({rnd({-1, 6, 5, 2}, 41), rnd({3, 2, 2, 3}, 42)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {2}, "same"); });
  check_gradients({rnd({-1, 7, 7, 2}, 43), rnd({3, 3, 2, 2}, 44)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {1}, "same", {2}); });
  check_gradients({rnd({-1, 5, 5, 4}, 45), rnd({3, 3, 2, 4}, 46)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {1}, "valid"); });
  // 1-D.
  check_gradients({rnd({-1, 9, 3}, 47), rnd({3, 3, 4}, 48)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {2}, "same"); });
  // Transposed: valid, same with stride 2, output_padding, dilation, 1-D.
  check_gradients({rnd({-1, 4, 3, 2}, 52), rnd({3, 3, 5, 2}, 53)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {1}, "valid"); });
  check_gradients({rnd({-1, 3, 4, 2}, 54), rnd({3, 2, 3, 2}, 55)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {2}, "same"); });
  check_gradients({rnd({-1, 3, 3, 2}, 56), rnd({2, 3, 2, 2}, 57)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {3, 2}, "valid", {1}); });
  check_gradients({rnd({-1, 3, 3, 1}, 58), rnd({3, 3, 2, 1}, 59)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {1}, "same", {}, {2}); });
  check_gradients({rnd({-1, 5, 3}, 60), rnd({3, 2, 3}, 61)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {2}, "valid"); });
  // Pooling: distinct values keep the max unique, so the max is differentiable at the probe.
  check_gradients({rnd({-1, 6, 6, 2}, 49)}, {}, [](auto& x, auto&) { return ops::max_pool(x[0], {2}); });
  check_gradients({rnd({-1, 5, 5, 2}, 50)}, {},
                  [](auto& x, auto&) { return ops::average_pool(x[0], {3}, {2}, "same"); });
  check_gradients({rnd({-1, 8, 3}, 51)}, {}, [](auto& x, auto&) { return ops::max_pool(x[0], {2}); });
}

TEST(Gradients, BatchNormalizationLayerWhileTraining) {
  // Through the batch statistics (every output depends on every input of its feature), on two feature axes.
  check_gradients({rnd({-1, 3, 4}, 62, 3, -2.f, 2.f)}, {},
                  [](auto& x, auto&) { return BatchNormalization({.momentum = 0.5f})(x[0]); }, 3, Mode::training);
  check_gradients({rnd({-1, 3, 4}, 63, 3, -2.f, 2.f)}, {},
                  [](auto& x, auto&) { return BatchNormalization({.axis = 1, .scale = false})(x[0]); }, 3, Mode::training);
}

TEST(Gradients, SplitAndFusedCells) {
  check_gradients({rnd({-1, 6, 2}, 90)}, {}, [](auto& x, auto&) {
    const auto pieces = ops::split(x[0], 3, 1);  // the middle piece unused: its gradient is zero
    return ops::concatenate({ops::multiply(pieces[2], 2.f), pieces[0]}, 1);
  });
  check_gradients({rnd({-1, 8}, 91, 3, -2.f, 2.f), rnd({-1, 2}, 92)}, {}, [](auto& x, auto&) {
    const auto hc = ops::lstm_cell(x[0], x[1]);
    return ops::concatenate({hc[0], ops::multiply(hc[1], 0.5f)}, -1);
  });
  check_gradients({rnd({-1, 6}, 93, 3, -2.f, 2.f), rnd({-1, 6}, 94, 3, -2.f, 2.f), rnd({-1, 2}, 95)}, {},
                  [](auto& x, auto&) { return ops::gru_cell(x[0], x[1], x[2]); });
}

TEST(Gradients, RecurrentLayersThroughTime) {
  // Backpropagation through every step, for each recurrent layer and GRU's two bias layouts.
  check_gradients({rnd({-1, 4, 3}, 64)}, {}, [](auto& x, auto&) { return SimpleRNN(3, {.return_sequences = true})(x[0]); });
  check_gradients({rnd({-1, 4, 3}, 65)}, {}, [](auto& x, auto&) { return LSTM(3, {.return_sequences = true})(x[0]); });
  check_gradients({rnd({-1, 5, 2}, 66)}, {}, [](auto& x, auto&) { return LSTM(2, {.go_backwards = true})(x[0]); });
  check_gradients({rnd({-1, 4, 3}, 67)}, {}, [](auto& x, auto&) { return GRU(3, {.return_sequences = true})(x[0]); });
  check_gradients({rnd({-1, 4, 3}, 68)}, {}, [](auto& x, auto&) { return GRU(2, {.reset_after = false})(x[0]); });
  check_gradients({rnd({-1, 4, 3}, 69)}, {},
                  [](auto& x, auto&) { return Bidirectional(LSTM(2, {.return_sequences = true}))(x[0]); });
}

TEST(Gradients, UnknownStepsThroughPaddingReshapesAndTimeDistributed) {
  // Steps unknown when traced (fed as 3): causal and "same" 1-D convolutions (padding, the 1-D view's
  // reshapes), TimeDistributed's fold and unfold by the input's shape.
  check_gradients({rnd({-1, -1, 2}, 80)}, {}, [](auto& x, auto&) { return Conv1D(2, 2, {.padding = "causal", .dilation_rate = 2})(x[0]); });
  check_gradients({rnd({-1, -1, 2}, 81)}, {}, [](auto& x, auto&) { return Conv1D(3, 3, {.padding = "same"})(x[0]); });
  check_gradients({rnd({-1, -1, 2}, 82)}, {}, [](auto& x, auto&) { return TimeDistributed(Dense(3, {.activation = "tanh"}))(x[0]); });
}

TEST(Gradients, UnknownSizesThroughPaddingCroppingRepeatsAndTransposedConvolutions) {
  // Sizes unknown when traced: the padding's gradient crops by what was padded after, the cropping's pads back,
  // the repeat folds a scaled unknown dimension, the transposed convolution infers its output size.
  check_gradients({rnd({-1, -1, 2}, 83)}, {}, [](auto& x, auto&) { return ZeroPadding1D({2, 1})(x[0]); });
  check_gradients({rnd({-1, -1, 2}, 84)}, {}, [](auto& x, auto&) { return Cropping1D({1, 0})(ZeroPadding1D({0, 2})(x[0])); });
  check_gradients({rnd({-1, -1, -1, 2}, 85)}, {}, [](auto& x, auto&) { return UpSampling2D({2, 3})(x[0]); });
  check_gradients({rnd({-1, -1, -1, 2}, 86)}, {},
                  [](auto& x, auto&) { return Conv2DTranspose(2, 3, {.strides = 2, .padding = "same"})(x[0]); });
}

TEST(Gradients, ConvLstmThroughTime) {
  // The fused cell over every position ("same", sequences), and the composed gates (softsign) from given
  // initial states with a strided input convolution, reaching the frames and both states.
  check_gradients({rnd({-1, 3, 5, 2}, 76)}, {},
                  [](auto& x, auto&) { return ConvLSTM1D(2, 3, {.padding = "same", .return_sequences = true})(x[0]); });
  check_gradients({rnd({-1, 2, 5, 4, 1}, 77), rnd({-1, 2, 2, 2}, 78), rnd({-1, 2, 2, 2}, 79)}, {}, [](auto& x, auto&) {
    const auto out = ConvLSTM2D(2, 2, {.strides = 2, .activation = "softsign", .return_state = true}).apply({x[0], x[1], x[2]});
    return ops::concatenate({out[0], out[2]}, -1);
  });
}

TEST(Gradients, RecurrentLayersWithMasksAndStates) {
  // Masked steps (from token ids, 0 = padding) and given initial states: the gradients reach the
  // sequence and the states through the kept and the updated steps alike.
  const FixedInput tokens{{-1, 4}, DType::int32, {0, 3, 1, 0, 2, 2, 0, 0, 0, 1, 1, 1}};
  auto masked = [](const Tensor& x, const Tensor& ids) {
    set_keras_mask(x, ops::not_equal(ops::cast(ids, DType::float32), 0.f));
    return x;
  };
  check_gradients({rnd({-1, 4, 3}, 70), rnd({-1, 2}, 71), rnd({-1, 2}, 72)}, {tokens}, [&](auto& x, auto& f) {
    const auto out = LSTM(2, {.return_sequences = true, .return_state = true}).apply({masked(x[0], f[0]), x[1], x[2]});
    return ops::concatenate({ops::reshape(out[0], {-1, 8}), out[1], out[2]}, -1);
  });
  check_gradients({rnd({-1, 4, 3}, 73), rnd({-1, 2}, 74)}, {tokens}, [&](auto& x, auto& f) {
    return GRU(2, {.go_backwards = true}).apply({masked(x[0], f[0]), x[1]})[0];
  });
  check_gradients({rnd({-1, 4, 3}, 75)}, {tokens}, [&](auto& x, auto& f) {
    const auto out = Bidirectional(SimpleRNN(2, {.return_sequences = true}), {.merge_mode = "none"}).apply({masked(x[0], f[0])});
    return ops::concatenate({out[0], out[1]}, -1);
  });
}

TEST(Gradients, MultiHeadAttentionWithMasks) {
  const FixedInput tokens{{-1, 4}, DType::int32, {0, 3, 1, 2, 2, 2, 0, 0, 5, 1, 1, 1}};
  check_gradients({rnd({-1, 4, 3}, 80), rnd({-1, 5, 2}, 81)}, {tokens}, [&](auto& x, auto& f) {
    set_keras_mask(x[0], ops::not_equal(ops::cast(f[0], DType::float32), 0.f));
    const auto out = MultiHeadAttention(2, 3, {.value_dim = 2}).apply({x[0], x[1]}, {{"return_attention_scores", true}});
    return ops::concatenate({ops::reshape(out[0], {-1, 12}), ops::reshape(out[1], {-1, 40})}, -1);
  });
  check_gradients({rnd({-1, 4, 3}, 82)}, {tokens}, [&](auto& x, auto& f) {
    set_keras_mask(x[0], ops::not_equal(ops::cast(f[0], DType::float32), 0.f));
    return MultiHeadAttention(3, 2, {.use_bias = false, .output_shape = 4}).apply({x[0], x[0]}, {{"use_causal_mask", true}})[0];
  });
  check_gradients({rnd({-1, 4, 3}, 83)}, {tokens}, [&](auto& x, auto& f) {
    set_keras_mask(x[0], ops::not_equal(ops::cast(f[0], DType::float32), 0.f));
    return Attention({.use_scale = true}).apply({x[0], x[0]}, {{"use_causal_mask", true}})[0];
  });  // Key and value heads shared by groups of query heads (their gradients summed over the group), the gate
  // and the sliding window.
  check_gradients({rnd({-1, 4, 3}, 84), rnd({-1, 5, 3}, 85)}, {tokens}, [&](auto& x, auto& f) {
    set_keras_mask(x[0], ops::not_equal(ops::cast(f[0], DType::float32), 0.f));
    const auto out = GroupQueryAttention(2, 4, 2, {.sliding_window = 2, .use_gate = true}).apply({x[0], x[1]}, {{"return_attention_scores", true}});
    return ops::concatenate({ops::reshape(out[0], {-1, 12}), ops::reshape(out[1], {-1, 80})}, -1);
  });
  check_gradients({rnd({-1, 4, 3}, 86)}, {tokens}, [&](auto& x, auto& f) {
    set_keras_mask(x[0], ops::not_equal(ops::cast(f[0], DType::float32), 0.f));
    return MultiHeadAttention(2, 2, {.sliding_window = 2, .use_gate = true}).apply({x[0], x[0]}, {{"use_causal_mask", true}})[0];
  });
}

TEST(Gradients, Einsum) {
  // Composed from transposes, reshapes, sums and a matmul: checked through each way of grouping subscripts.
  check_gradients({rnd({-1, 3, 4}, 90), rnd({4, 2, 3}, 91)}, {}, [](auto& x, auto&) { return ops::einsum("abc,cde->abde", x[0], x[1]); });
  check_gradients({rnd({-1, 3, 4}, 92), rnd({-1, 4, 2}, 93)}, {}, [](auto& x, auto&) { return ops::einsum("bij,bjk->bki", x[0], x[1]); });
  check_gradients({rnd({-1, 3, 4}, 94), rnd({4, 5}, 95)}, {}, [](auto& x, auto&) { return ops::einsum("abc,cd->da", x[0], x[1]); });
  check_gradients({rnd({-1, 3, 4}, 96), rnd({3, 2}, 97)}, {}, [](auto& x, auto&) { return ops::einsum("ab...,bc->ac...", x[0], x[1]); });
}

TEST(Gradients, VolumeConvolutionAndPooling) {
  // Composed from 2-D convolutions and poolings over the depth taps (graph/volume_ops.h).
  check_gradients({rnd({-1, 4, 3, 3, 2}, 100), rnd({2, 2, 2, 2, 3}, 101)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {2, 1, 1}, "same", {1}); });
  check_gradients({rnd({-1, 5, 3, 4, 2}, 102), rnd({2, 2, 1, 2, 2}, 103)}, {},
                  [](auto& x, auto&) { return ops::conv(x[0], x[1], {1}, "valid", {2, 1, 1}); });
  check_gradients({rnd({-1, 5, 4, 3, 2}, 104)}, {}, [](auto& x, auto&) { return ops::max_pool(x[0], {3, 2, 2}, {2, 2, 1}, "same"); });
  check_gradients({rnd({-1, 5, 4, 3, 2}, 105)}, {}, [](auto& x, auto&) { return ops::average_pool(x[0], {3, 2, 2}, {2, 1, 2}, "same"); });
  // Transposed: each depth tap's 2-D transposed convolution spread over the strided planes, summed and cropped.
  check_gradients({rnd({-1, 2, 3, 2, 2}, 106), rnd({3, 2, 2, 2, 2}, 107)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {2, 1, 2}, "same", {}, {1}); });
  check_gradients({rnd({-1, 3, 2, 2, 2}, 108), rnd({2, 2, 1, 3, 2}, 109)}, {},
                  [](auto& x, auto&) { return ops::conv_transpose(x[0], x[1], {1}, "valid", {1, 0, 0}, {2, 1, 1}); });
}

TEST(Gradients, DropoutScalesByItsMask) {
  // dx = dy * mask and y = x * mask, so dx / dy == y / x element by element, in training.
  clear_session();
  const Tensor x = ops::placeholder({-1, 50});
  const Tensor y = ops::dropout(x, 0.4f, 9);
  const Tensor loss = ops::sum(y);
  const Tensor dx = gradients(loss, {x})[0];
  // Training mode needs an optimizer; a variable-free program still builds one.
  Program p({x}, {y, dx, loss}, loss, std::make_shared<Optimizer>(OptimizerUpdate{}));
  auto data = random_away_from_zero(200, 0.1f, 1.f, 52);
  const TensorView feed{data.data(), DType::float32, {4, 50}};
  p.run(Mode::training, {&feed, 1});
  const auto yv = p.read_output(0), gv = p.read_output(1);
  int dropped = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    EXPECT_NEAR(gv[i], yv[i] / data[i], 1e-5);
    dropped += yv[i] == 0.f;
  }
  EXPECT_GT(dropped, 40);
  EXPECT_LT(dropped, 120);
  p.run(Mode::inference, {&feed, 1});
  EXPECT_EQ(p.read_output(0), data) << "inference is the identity";
}

}  // namespace
}  // namespace strata::test
