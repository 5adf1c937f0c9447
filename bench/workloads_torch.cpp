// The libtorch twins of bench/workloads.cpp: the same networks, optimizer, batch size and data, written as a
// libtorch user would (the dataset as one float tensor, a shuffled permutation per epoch, NCHW images).
//   bench_torch WORKLOAD [EPOCHS]      (TORCH_THREADS sets torch's thread count)
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "bench/report.h"
#include "io/idx.h"

namespace {

// Images as the network takes them: (N, 784) rows for the MLP, (N, 1, 28, 28) for the CNN; labels as int64.
torch::Tensor load(const std::string& path, bool images, bool flat) {
  const strata::io::IdxArray idx = strata::io::read_idx(path);
  auto bytes = torch::from_blob(const_cast<std::uint8_t*>(idx.data.data()), {std::int64_t(idx.data.size())}, torch::kUInt8).clone();
  if (!images) return bytes.to(torch::kInt64);
  const auto shaped = flat ? bytes.reshape({idx.shape[0], 784}) : bytes.reshape({idx.shape[0], 1, 28, 28});
  return shaped.to(torch::kFloat32).div_(255.0);
}

struct Mlp : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  Mlp() {
    fc1 = register_module("fc1", torch::nn::Linear(784, 256));
    fc2 = register_module("fc2", torch::nn::Linear(256, 128));
    fc3 = register_module("fc3", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return torch::log_softmax(fc3->forward(x), 1);
  }
};

struct Cnn : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc{nullptr};
  Cnn() {
    conv1 = register_module("conv1", torch::nn::Conv2d(1, 32, 3));
    conv2 = register_module("conv2", torch::nn::Conv2d(32, 64, 3));
    fc = register_module("fc", torch::nn::Linear(64 * 5 * 5, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    return torch::log_softmax(fc->forward(x.flatten(1)), 1);
  }
};

struct RowLstm : torch::nn::Module {
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear fc{nullptr};
  RowLstm() {
    lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(28, 128).batch_first(true)));
    fc = register_module("fc", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    const auto out = std::get<0>(lstm->forward(x.reshape({x.size(0), 28, 28})));
    return torch::log_softmax(fc->forward(out.select(1, 27)), 1);
  }
};

template <class Net>
bench::Report run(const std::string& workload, int epochs, const torch::Tensor& x_train, const torch::Tensor& y_train,
                  const torch::Tensor& x_test, const torch::Tensor& y_test) {
  auto net = std::make_shared<Net>();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-3).eps(1e-7));
  const std::int64_t n = x_train.size(0), batch = 128;
  bench::Report r{.framework = "libtorch", .workload = workload, .epochs = epochs, .threads = torch::get_num_threads(), .samples = double(n)};
  const auto start = bench::Clock::now();
  net->train();
  for (int e = 0; e < epochs; ++e) {
    const auto perm = torch::randperm(n, torch::kInt64);
    for (std::int64_t b = 0; b < n; b += batch) {
      const auto idx = perm.slice(0, b, std::min(b + batch, n));
      adam.zero_grad();
      const torch::Tensor loss = torch::nll_loss(net->forward(x_train.index_select(0, idx)), y_train.index_select(0, idx));
      loss.backward();
      adam.step();
    }
  }
  r.train_seconds = std::chrono::duration<double>(bench::Clock::now() - start).count();
  net->eval();
  torch::NoGradGuard no_grad;
  double correct = 0;
  for (std::int64_t b = 0; b < x_test.size(0); b += batch) {
    const auto xb = x_test.slice(0, b, std::min(b + batch, x_test.size(0)));
    const torch::Tensor out = net->forward(xb);
    correct += out.argmax(1).eq(y_test.slice(0, b, b + xb.size(0))).sum().item<double>();
  }
  r.test_accuracy = correct / double(x_test.size(0));
  const auto one = x_test.slice(0, 0, 1).clone();
  r.predict_one_us = bench::median_latency_us([&] {
    const torch::Tensor y = net->forward(one).exp();
    (void)y.data_ptr<float>();
  });
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string workload = argc > 1 ? argv[1] : "mlp";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 1;
  if (const char* t = std::getenv("TORCH_THREADS")) torch::set_num_threads(std::atoi(t));
  const char* env_dir = std::getenv("STRATA_FASHION_MNIST");
  const std::string dir = env_dir && *env_dir ? env_dir : "/usr/share/datasets/fashion-mnist";
  torch::manual_seed(42);
  const bool flat = workload == "mlp";
  const auto x_train = load(dir + "/train-images-idx3-ubyte.gz", true, flat), y_train = load(dir + "/train-labels-idx1-ubyte.gz", false, flat);
  const auto x_test = load(dir + "/t10k-images-idx3-ubyte.gz", true, flat), y_test = load(dir + "/t10k-labels-idx1-ubyte.gz", false, flat);
  if (workload == "mlp") bench::print(run<Mlp>(workload, epochs, x_train, y_train, x_test, y_test));
  else if (workload == "cnn") bench::print(run<Cnn>(workload, epochs, x_train, y_train, x_test, y_test));
  else if (workload == "lstm") bench::print(run<RowLstm>(workload, epochs, x_train, y_train, x_test, y_test));
  else throw std::invalid_argument("unknown workload '" + workload + "' (mlp, cnn or lstm)");
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_torch: {}\n", e.what());
  return 1;
}
