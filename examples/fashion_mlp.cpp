// Trains a 784-256-128-10 MLP on Fashion-MNIST, written directly against the engine: placeholders, ops,
// variables, a training Program and an inference Program.
//
//   fashion_mlp [DATA_DIR] [EPOCHS]     (DATA_DIR defaults to /usr/share/datasets/fashion-mnist)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <numeric>
#include <random>

#include "graph/ops.h"
#include "graph/program.h"
#include "io/idx.h"

using namespace strata;

namespace {

// Keras's default kernel initializer: uniform in +-sqrt(6 / (fan_in + fan_out)).
VariablePtr glorot_uniform(const std::string& name, std::int64_t fan_in, std::int64_t fan_out, std::uint64_t seed) {
  auto v = std::make_shared<Variable>(name, Shape{fan_in, fan_out});
  const float limit = std::sqrt(6.f / float(fan_in + fan_out));
  v->backend().random(RandomKind::uniform, v->view(), seed, 0, -limit, limit);
  return v;
}

Tensor dense(const Tensor& x, std::int64_t units, const std::string& name, std::uint64_t seed) {
  NameScope scope(x.graph(), name);
  auto kernel = glorot_uniform(name + "/kernel", x.shape()[1], units, seed);
  auto bias = std::make_shared<Variable>(name + "/bias", Shape{units});
  return ops::add(ops::matmul(x, kernel), bias);
}

struct Split {
  const io::IdxArray* images;
  const io::IdxArray* labels;
  std::vector<std::int64_t> rows;
};

// Converts the selected rows to float32 in [0, 1] as they are drawn; the images stay uint8 in memory.
void fill_batch(const Split& s, std::size_t begin, std::size_t n, std::vector<float>& x, std::vector<std::int32_t>& y) {
  constexpr std::size_t pixels = 28 * 28;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t r = s.rows[begin + i];
    const std::uint8_t* src = s.images->data.data() + std::size_t(r) * pixels;
    for (std::size_t p = 0; p < pixels; ++p) x[i * pixels + p] = float(src[p]) * (1.f / 255.f);
    y[i] = s.labels->data[std::size_t(r)];
  }
}

// Mean loss and accuracy of `program` (outputs: loss, correct count) over a split, in inference mode.
std::pair<double, double> evaluate(Program& program, const Split& s, std::size_t batch) {
  std::vector<float> x(batch * 784);
  std::vector<std::int32_t> y(batch);
  double loss = 0, correct = 0;
  for (std::size_t b = 0; b < s.rows.size(); b += batch) {
    const std::size_t n = std::min(batch, s.rows.size() - b);
    fill_batch(s, b, n, x, y);
    const TensorView feeds[] = {{x.data(), DType::float32, {std::int64_t(n), 784}}, {y.data(), DType::int32, {std::int64_t(n)}}};
    program.run(Mode::inference, feeds);
    loss += program.read_scalar(0) * double(n);
    correct += program.read_scalar(1);
  }
  return {loss / double(s.rows.size()), correct / double(s.rows.size())};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 10;
  const std::size_t batch = 128;
  try {
    const io::IdxArray train_x = io::read_idx(dir + "/train-images-idx3-ubyte.gz");
    const io::IdxArray train_y = io::read_idx(dir + "/train-labels-idx1-ubyte.gz");
    const io::IdxArray test_x = io::read_idx(dir + "/t10k-images-idx3-ubyte.gz");
    const io::IdxArray test_y = io::read_idx(dir + "/t10k-labels-idx1-ubyte.gz");

    // The model: Flatten -> Dense(256, relu) -> Dense(128, relu) -> Dense(10), softmax folded into the loss.
    const Tensor x = ops::placeholder({-1, 784}, DType::float32, "images");
    const Tensor labels = ops::placeholder({-1}, DType::int32, "labels");
    Tensor h = ops::relu(dense(x, 256, "dense", 1));
    h = ops::relu(dense(h, 128, "dense_1", 2));
    const Tensor logits = dense(h, 10, "dense_2", 3);
    // Sparse categorical crossentropy, and the number of correct predictions in the batch.
    const Tensor loss = ops::negative(ops::mean(ops::gather(ops::log_softmax(logits), labels, 1, 1)));
    const Tensor correct =
        ops::sum(ops::equal(ops::cast(ops::argmax(logits), DType::float32), ops::cast(labels, DType::float32)));

    auto adam = std::make_shared<Optimizer>(OptimizerUpdate{.kind = OptimizerKind::adam, .learning_rate = 1e-3f});
    Program program({x, labels}, {loss, correct}, loss, adam, ProgramOptions{.seed = 42});
    const PlanStats plan = program.plan_stats(Mode::training, std::vector<Shape>{{std::int64_t(batch), 784}, {std::int64_t(batch)}});
    fmt::print("training plan: {} primitive launches, {:.2f} MB of intermediates ({:.2f} MB without reuse)\n",
               plan.steps, plan.arena_bytes / 1e6, plan.intermediate_bytes / 1e6);

    // validation_split 0.1: the last 10% of the training set, taken before shuffling.
    const std::int64_t n_train = train_x.shape[0], n_val = n_train / 10;
    Split fit{&train_x, &train_y, {}}, val{&train_x, &train_y, {}}, test{&test_x, &test_y, {}};
    fit.rows.resize(std::size_t(n_train - n_val));
    std::iota(fit.rows.begin(), fit.rows.end(), 0);
    val.rows.resize(std::size_t(n_val));
    std::iota(val.rows.begin(), val.rows.end(), n_train - n_val);
    test.rows.resize(std::size_t(test_x.shape[0]));
    std::iota(test.rows.begin(), test.rows.end(), 0);

    std::mt19937_64 shuffle_rng(42);
    std::vector<float> xb(batch * 784);
    std::vector<std::int32_t> yb(batch);
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      const auto start = std::chrono::steady_clock::now();
      std::shuffle(fit.rows.begin(), fit.rows.end(), shuffle_rng);
      double loss_sum = 0, correct_sum = 0;
      for (std::size_t b = 0; b < fit.rows.size(); b += batch) {
        const std::size_t n = std::min(batch, fit.rows.size() - b);
        fill_batch(fit, b, n, xb, yb);
        const TensorView feeds[] = {{xb.data(), DType::float32, {std::int64_t(n), 784}}, {yb.data(), DType::int32, {std::int64_t(n)}}};
        program.run(Mode::training, feeds);
        loss_sum += program.read_scalar(0) * double(n);
        correct_sum += program.read_scalar(1);
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto [val_loss, val_acc] = evaluate(program, val, batch);
      fmt::print("Epoch {}/{} - {:.1f}s - accuracy: {:.4f} - loss: {:.4f} - val_accuracy: {:.4f} - val_loss: {:.4f}\n",
                 epoch, epochs, seconds, correct_sum / double(fit.rows.size()), loss_sum / double(fit.rows.size()),
                 val_acc, val_loss);
    }
    const auto [test_loss, test_acc] = evaluate(program, test, batch);
    fmt::print("test accuracy: {:.4f} - test loss: {:.4f}\n", test_acc, test_loss);
  } catch (const std::exception& e) {
    fmt::print(stderr, "fashion_mlp: {}\n", e.what());
    return 1;
  }
  return 0;
}
