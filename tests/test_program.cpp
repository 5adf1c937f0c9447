// The executor and planner: buffer reuse, plan caching per shape, no allocation per step, training, errors.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "api/strata.h"
#include "graph/autodiff.h"
#include "graph/ops.h"
#include "graph/planner.h"
#include "graph/program.h"
#include "test_util.h"

// Counts every operator new in this test program, to prove that a training step allocates nothing.
static std::atomic<long> g_heap_allocations{0};
void* operator new(std::size_t n) {
  g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// The nothrow form too (std::stable_sort's buffer): every form whose memory reaches the delete above must
// come from malloc, or a sanitizer's own operator new would be freed here.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace strata::test {
namespace {

VariablePtr make_weight(const std::string& name, Shape shape, std::uint32_t seed) {
  auto v = std::make_shared<Variable>(name, shape);
  const float limit = std::sqrt(6.f / float(shape[0] + shape[shape.rank() - 1]));
  v->assign(random_vector(std::size_t(shape.numel()), -limit, limit, seed));
  return v;
}

struct Mlp {
  Tensor x, labels, logits, loss;
  std::vector<VariablePtr> weights;
};

// A dense network written with ops only: the way a custom model would be.
Mlp build_mlp(const std::vector<std::int64_t>& widths, float dropout = 0.f) {
  clear_session();
  Mlp m;
  m.x = ops::placeholder({-1, widths[0]}, DType::float32, "x");
  m.labels = ops::placeholder({-1}, DType::int32, "labels");
  Tensor h = m.x;
  for (std::size_t i = 1; i < widths.size(); ++i) {
    auto w = make_weight("kernel" + std::to_string(i), {widths[i - 1], widths[i]}, std::uint32_t(i));
    auto b = std::make_shared<Variable>("bias" + std::to_string(i), Shape{widths[i]});
    m.weights.push_back(w);
    m.weights.push_back(b);
    h = ops::add(ops::matmul(h, w), b);
    if (i + 1 < widths.size()) {
      h = ops::relu(h);
      if (dropout > 0.f) h = ops::dropout(h, dropout, i);
    }
  }
  m.logits = h;
  // Sparse categorical crossentropy from logits.
  m.loss = ops::negative(ops::mean(ops::gather(ops::log_softmax(h), m.labels, 1, 1)));
  return m;
}

// Two Gaussian blobs per class in `dims` dimensions.
void make_blobs(std::int64_t n, std::int64_t dims, int classes, std::vector<float>& x, std::vector<std::int32_t>& y) {
  auto centers = random_vector(std::size_t(classes * dims), -2, 2, 99);
  auto noise = random_vector(std::size_t(n * dims), -0.5f, 0.5f, 98);
  x.resize(std::size_t(n * dims));
  y.resize(std::size_t(n));
  for (std::int64_t i = 0; i < n; ++i) {
    y[std::size_t(i)] = std::int32_t(i % classes);
    for (std::int64_t d = 0; d < dims; ++d)
      x[std::size_t(i * dims + d)] = centers[std::size_t(y[std::size_t(i)] * dims + d)] + noise[std::size_t(i * dims + d)];
  }
}

TEST(Planner, NoTwoLiveBuffersOverlap) {
  std::vector<BufferRequest> reqs;
  auto sizes = random_vector(200, 1, 5000, 1);
  auto starts = random_vector(200, -1, 60, 2);
  auto lens = random_vector(200, 0, 20, 3);
  for (std::size_t i = 0; i < 200; ++i)
    reqs.push_back({std::size_t(sizes[i]), int(starts[i]), int(starts[i]) + int(lens[i])});
  const BufferPlan plan = plan_buffers(reqs);
  std::size_t peak_live = 0;
  for (int t = -1; t < 80; ++t) {
    std::size_t live = 0;
    for (const auto& r : reqs) live += (r.first_step <= t && t <= r.last_step) ? (r.bytes + 63) / 64 * 64 : 0;
    peak_live = std::max(peak_live, live);
  }
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(plan.offsets[i] % 64, 0u);
    EXPECT_LE(plan.offsets[i] + reqs[i].bytes, plan.arena_bytes);
    for (std::size_t j = i + 1; j < reqs.size(); ++j) {
      const bool overlap_time = reqs[i].first_step <= reqs[j].last_step && reqs[j].first_step <= reqs[i].last_step;
      const bool overlap_mem =
          plan.offsets[i] < plan.offsets[j] + reqs[j].bytes && plan.offsets[j] < plan.offsets[i] + reqs[i].bytes;
      EXPECT_FALSE(overlap_time && overlap_mem) << "buffers " << i << " and " << j;
    }
  }
  // The arena can never beat the peak of simultaneously live bytes, and should come near it.
  EXPECT_GE(plan.arena_bytes, peak_live);
  EXPECT_LE(double(plan.arena_bytes), 1.5 * double(peak_live));
}

TEST(Planner, FiveLayerMlpReusesMemory) {
  Mlp m = build_mlp({784, 512, 512, 256, 128, 10});
  Program p({m.x, m.labels}, {m.loss}, m.loss, std::make_shared<Optimizer>(OptimizerUpdate{}));
  const std::vector<Shape> shapes{{128, 784}, {128}};
  const PlanStats train = p.plan_stats(Mode::training, shapes);
  const PlanStats infer = p.plan_stats(Mode::inference, shapes);
  // Reported for the record; the bounds below are what the test holds the planner to.
  std::printf("training plan: %zu bytes planned, %zu without reuse, %d steps\n", train.arena_bytes,
              train.intermediate_bytes, train.steps);
  std::printf("inference plan: %zu bytes planned, %zu without reuse, %d steps\n", infer.arena_bytes,
              infer.intermediate_bytes, infer.steps);
  EXPECT_LT(double(train.arena_bytes), 0.6 * double(train.intermediate_bytes));
  EXPECT_LT(double(infer.arena_bytes), 0.5 * double(infer.intermediate_bytes));
  EXPECT_LT(infer.arena_bytes, train.arena_bytes);
}

// After one warm-up step (plans, arena, optimizer state), five training steps call neither operator new
// nor the backend's allocator.
void expect_steps_allocate_nothing(Program& p, std::span<const TensorView> feeds) {
  p.run(Mode::training, feeds);
  const AllocationStats before = p.backend().stats();
  const long heap_before = g_heap_allocations.load();
  for (int step = 0; step < 5; ++step) {
    p.run(Mode::training, feeds);
    (void)p.read_scalar(0);
  }
  EXPECT_EQ(p.backend().stats().allocations, before.allocations) << "backend allocations during training steps";
  EXPECT_EQ(g_heap_allocations.load(), heap_before) << "operator new calls during training steps";
}

TEST(Program, TrainingStepsAllocateNothingAfterWarmup) {
  Mlp m = build_mlp({64, 128, 128, 64, 32, 10}, 0.2f);
  auto opt = std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::adam, .learning_rate = 1e-3f});
  Program p({m.x, m.labels}, {m.loss}, m.loss, opt);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  make_blobs(64, 64, 10, x, y);
  const TensorView feeds[] = {{x.data(), DType::float32, {64, 64}}, {y.data(), DType::int32, {64}}};
  expect_steps_allocate_nothing(p, feeds);
}

TEST(Program, ConvnetTrainingStepsAllocateNothingAfterWarmup) {
  // Convolutions (im2col scratch), BatchNormalization (moving statistics), pooling, dropout, on 2 threads.
  clear_session();
  const Tensor x = ops::placeholder({-1, 12, 12, 3}, DType::float32, "x");
  const Tensor labels = ops::placeholder({-1}, DType::int32, "labels");
  Tensor h = Conv2D(8, 3, {.padding = "same"})(x);
  h = Activation("relu")(BatchNormalization()(h));
  h = MaxPooling2D(2)(h);
  h = SpatialDropout2D(0.2f)(Conv2D(16, 3, {.strides = 2, .activation = "relu"})(h));
  h = Dense(10)(GlobalAveragePooling2D()(h));
  const Tensor loss = ops::negative(ops::mean(ops::gather(ops::log_softmax(h), labels, 1, 1)));
  Program p({x, labels}, {loss}, loss, std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::adam, .learning_rate = 1e-3f}));
  const auto images = random_vector(16 * 12 * 12 * 3, -1, 1, 5);
  std::vector<std::int32_t> y(16);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::int32_t(i % 10);
  const TensorView feeds[] = {{const_cast<float*>(images.data()), DType::float32, {16, 12, 12, 3}}, {y.data(), DType::int32, {16}}};
  expect_steps_allocate_nothing(p, feeds);
}

TEST(Program, RecurrentTrainingStepsAllocateNothingAfterWarmup) {
  // Backpropagation through time over fused LSTM and GRU cells, masked steps and a bidirectional layer.
  clear_session();
  const Tensor x = ops::placeholder({-1, 7, 3}, DType::float32, "x");
  const Tensor labels = ops::placeholder({-1}, DType::int32, "labels");
  Tensor h = LSTM(6, {.recurrent_dropout = 0.2f, .return_sequences = true})(Masking()(x));
  h = Bidirectional(GRU(4))(h);
  const Tensor loss = ops::negative(ops::mean(ops::gather(ops::log_softmax(Dense(5)(h)), labels, 1, 1)));
  Program p({x, labels}, {loss}, loss, std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::adam, .learning_rate = 1e-3f}));
  auto sequences = random_vector(16 * 7 * 3, -1, 1, 6);
  for (int f = 0; f < 3; ++f) sequences[std::size_t(6 * 3 + f)] = 0.f;  // a masked last step
  std::vector<std::int32_t> y(16);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::int32_t(i % 5);
  const TensorView feeds[] = {{sequences.data(), DType::float32, {16, 7, 3}}, {y.data(), DType::int32, {16}}};
  expect_steps_allocate_nothing(p, feeds);
}

TEST(Program, LearnsASeparableProblem) {
  Mlp m = build_mlp({8, 32, 4});
  auto opt = std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::adam, .learning_rate = 1e-2f});
  const Tensor predicted = ops::argmax(m.logits, -1);
  Program train({m.x, m.labels}, {m.loss}, m.loss, opt);
  Program predict({m.x}, {predicted});
  std::vector<float> x;
  std::vector<std::int32_t> y;
  make_blobs(200, 8, 4, x, y);
  const TensorView feeds[] = {{x.data(), DType::float32, {200, 8}}, {y.data(), DType::int32, {200}}};
  train.run(Mode::inference, feeds);
  const float initial = train.read_scalar(0);
  for (int step = 0; step < 100; ++step) train.run(Mode::training, feeds);
  train.run(Mode::inference, feeds);
  EXPECT_LT(train.read_scalar(0), 0.1f * initial);
  predict.run(Mode::inference, {feeds, 1});
  std::vector<std::int32_t> got(200);
  predict.read_output(0, got.data(), got.size() * sizeof(std::int32_t));
  EXPECT_EQ(got, y);
  EXPECT_EQ(opt->iterations(), 100);
}

// A reducer (data-parallel training's allreduce) sees every raw gradient once, after the step that
// finishes it, and its results are what clipping and the optimizer read.
TEST(Program, GradientReducerSeesEachGradientBeforeClippingAndTheOptimizer) {
  struct Scaling : GradientReducer {
    float factor = 1.f;
    std::vector<int> ready;
    std::vector<std::vector<float>> at_ready;
    int finished = 0;
    void gradient_ready(Backend& backend, int index, const TensorView& g) override {
      EXPECT_EQ(finished, 0) << "a gradient became ready after finish()";
      ready.push_back(index);
      std::vector<float> host(std::size_t(g.numel()));
      backend.copy_to_host(host.data(), g.data, g.bytes());
      at_ready.push_back(host);
    }
    void finish(Backend& backend, std::span<const TensorView> grads) override {
      ++finished;
      EXPECT_EQ(ready.size(), grads.size());
      for (const TensorView& g : grads) {
        std::vector<float> host(std::size_t(g.numel()));
        backend.copy_to_host(host.data(), g.data, g.bytes());
        for (float& v : host) v *= factor;
        backend.copy_to_device(g.data, host.data(), g.bytes());
      }
    }
  };
  std::vector<float> x;
  std::vector<std::int32_t> y;
  make_blobs(16, 6, 3, x, y);
  const TensorView feeds[] = {{x.data(), DType::float32, {16, 6}}, {y.data(), DType::int32, {16}}};
  auto weights_after_step = [&](float lr, std::shared_ptr<Scaling> reducer, std::optional<float> clipnorm) {
    Mlp m = build_mlp({6, 8, 3});
    auto opt = std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::sgd, .learning_rate = lr});
    if (clipnorm) opt->set_clipping({.clipnorm = clipnorm});
    Program train({m.x, m.labels}, {m.loss}, m.loss, opt);
    train.set_gradient_reducer(reducer);
    train.run(Mode::training, feeds);
    std::vector<std::vector<float>> out;
    for (const auto& w : m.weights) out.push_back(w->to_vector());
    return out;
  };
  const auto before = weights_after_step(0.f, nullptr, std::nullopt);
  auto twice = std::make_shared<Scaling>();
  twice->factor = 2.f;
  const auto reduced = weights_after_step(0.1f, twice, std::nullopt);
  const auto doubled_rate = weights_after_step(0.2f, nullptr, std::nullopt);
  ASSERT_EQ(twice->ready.size(), before.size());
  EXPECT_EQ(twice->finished, 1);
  std::vector<int> sorted = twice->ready;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], int(i));  // each gradient once
  for (std::size_t i = 0; i < before.size(); ++i)
    for (std::size_t k = 0; k < before[i].size(); ++k) {
      EXPECT_NEAR(reduced[i][k], doubled_rate[i][k], 1e-6f);
      // What the reducer saw was the final gradient: the plain update recovers it.
      const std::size_t at = std::size_t(std::find(twice->ready.begin(), twice->ready.end(), int(i)) - twice->ready.begin());
      EXPECT_NEAR(before[i][k] - 0.2f * twice->at_ready[at][k], doubled_rate[i][k], 1e-6f);
    }
  // Clipping reads the reduced gradients: with clipnorm above every plain gradient's norm but below the
  // reduced ones', every update is clipped to exactly lr * clipnorm (unclipped, had clipping come first).
  double largest = 0, smallest = 1e30;
  for (const auto& g : twice->at_ready) {
    double n = 0;
    for (float v : g) n += double(v) * v;
    largest = std::max(largest, std::sqrt(n));
    smallest = std::min(smallest, std::sqrt(n));
  }
  const float clipnorm = float(2 * largest);
  ASSERT_GT(1000 * smallest, 2 * clipnorm);
  auto huge = std::make_shared<Scaling>();
  huge->factor = 1000.f;
  const auto clipped = weights_after_step(0.1f, huge, clipnorm);
  for (std::size_t i = 0; i < before.size(); ++i) {
    double norm = 0;
    for (std::size_t k = 0; k < before[i].size(); ++k) norm += double(clipped[i][k] - before[i][k]) * double(clipped[i][k] - before[i][k]);
    EXPECT_NEAR(std::sqrt(norm), 0.1 * clipnorm, 1e-4 * clipnorm) << "variable " << i;
  }
}

TEST(Program, PlansPerShapeSoAnyBatchWorks) {
  Mlp m = build_mlp({6, 5, 3});
  Program p({m.x}, {m.logits});
  std::vector<float> x = random_vector(6 * 7, -1, 1, 5);
  // Row r of a batch of 7 equals row r of a batch of 3 when the first rows agree (up to summation order:
  // products of few rows take their own path).
  const TensorView seven{x.data(), DType::float32, {7, 6}}, three{x.data(), DType::float32, {3, 6}};
  p.run(Mode::inference, {&seven, 1});
  const auto full = p.read_output(0);
  p.run(Mode::inference, {&three, 1});
  EXPECT_EQ(p.output_shape(0), (Shape{3, 3}));
  const auto part = p.read_output(0);
  for (std::size_t i = 0; i < part.size(); ++i) EXPECT_NEAR(part[i], full[i], 1e-6f * (1.f + std::abs(full[i])));
  const TensorView one{x.data(), DType::float32, {1, 6}};
  p.run(Mode::inference, {&one, 1});
  EXPECT_EQ(p.output_shape(0), (Shape{1, 3}));
}

TEST(Program, SameSeedSameWeights) {
  auto train_once = [] {
    Mlp m = build_mlp({8, 16, 4}, 0.3f);
    auto opt = std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::sgd, .learning_rate = 0.1f});
    Program p({m.x, m.labels}, {m.loss}, m.loss, opt, ProgramOptions{.seed = 1234});
    std::vector<float> x;
    std::vector<std::int32_t> y;
    make_blobs(32, 8, 4, x, y);
    const TensorView feeds[] = {{x.data(), DType::float32, {32, 8}}, {y.data(), DType::int32, {32}}};
    for (int s = 0; s < 10; ++s) p.run(Mode::training, feeds);
    return m.weights[0]->to_vector();
  };
  EXPECT_EQ(train_once(), train_once());
}

TEST(Program, AssignRunsAfterTrainingSteps) {
  clear_session();
  auto counter = std::make_shared<Variable>("counter", Shape{1}, DType::float32, false);
  auto w = std::make_shared<Variable>("w", Shape{1});
  const Tensor x = ops::placeholder({-1, 1});
  const Tensor loss = ops::mean(ops::square(ops::matmul(x, ops::reshape(ops::variable(w, x), {1, 1}))));
  ops::assign(counter, ops::add(ops::variable(counter, x), 1.f));
  Program p({x}, {loss}, loss, std::make_shared<Optimizer>(OptimizerUpdate{}));
  std::vector<float> data{1, 2};
  const TensorView feed{data.data(), DType::float32, {2, 1}};
  for (int i = 0; i < 3; ++i) p.run(Mode::training, {&feed, 1});
  p.run(Mode::inference, {&feed, 1});
  EXPECT_EQ(counter->to_vector()[0], 3.f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TraceErrors, NameTheOpAndBothShapes) {
  clear_session();
  const Tensor x = ops::placeholder({-1, 784});
  auto w = std::make_shared<Variable>("kernel", Shape{512, 10});
  EXPECT_EQ(error_of([&] { ops::matmul(x, w); }),
            "matmul: (None, 784) x (512, 10): inner dimensions 784 and 512 differ");
  const Tensor y = ops::placeholder({-1, 3});
  EXPECT_EQ(error_of([&] { ops::add(x, y); }),
            "add: (None, 784) and (None, 3) cannot be broadcast together (dimension 1: 784 vs 3)");
  {
    NameScope scope(x.graph(), "dense_1");
    EXPECT_EQ(error_of([&] { ops::matmul(x, w); }),
              "dense_1: matmul: (None, 784) x (512, 10): inner dimensions 784 and 512 differ");
  }
  EXPECT_EQ(error_of([&] { ops::reshape(x, {-1, 5}); }), "reshape: cannot reshape (None, 784) into (-1, 5)");
  const Tensor img = ops::placeholder({-1, 28, 28, 3});
  auto k = std::make_shared<Variable>("k", Shape{3, 3, 2, 8});
  EXPECT_EQ(error_of([&] { ops::conv(img, k); }),
            "conv: input (None, 28, 28, 3) has 3 channels, not a multiple of kernel (3, 3, 2, 8)'s 2");
}

TEST(TraceErrors, FeedingTheWrongShapeNamesTheInput) {
  Mlp m = build_mlp({6, 5, 3});
  Program p({m.x}, {m.logits});
  std::vector<float> x(35);
  const TensorView bad{x.data(), DType::float32, {5, 7}};
  EXPECT_EQ(error_of([&] { p.run(Mode::inference, {&bad, 1}); }), "input 'x': expected shape (None, 6), got (5, 7)");
  EXPECT_NE(error_of([&] { Program q({m.x}, {m.loss}); }).find("depend on input 'labels'"), std::string::npos);
  std::vector<std::int32_t> labels{0, 9};
  std::vector<float> ok(12);
  const TensorView feeds[] = {{ok.data(), DType::float32, {2, 6}}, {labels.data(), DType::int32, {2}}};
  Program loss_only({m.x, m.labels}, {m.loss});
  EXPECT_EQ(error_of([&] { loss_only.run(Mode::inference, feeds); }), "gather: index 9 is out of range [0, 3)");
}

}  // namespace
}  // namespace strata::test
