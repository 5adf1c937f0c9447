// The libtorch twin of bench/mlp.cpp: the same network, optimizer, batch size and data, written as a
// libtorch user would (the dataset as one float tensor, a shuffled permutation per epoch).
#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "io/idx.h"

using Clock = std::chrono::steady_clock;

namespace {

torch::Tensor load(const std::string& path, bool images) {
  const strata::io::IdxArray idx = strata::io::read_idx(path);
  auto bytes = torch::from_blob(const_cast<std::uint8_t*>(idx.data.data()), {std::int64_t(idx.data.size())}, torch::kUInt8).clone();
  if (images) return bytes.reshape({idx.shape[0], 784}).to(torch::kFloat32).div_(255.0);
  return bytes.to(torch::kInt64);
}

struct Net : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  Net() {
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

}  // namespace

int main(int argc, char** argv) try {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 1;
  if (const char* t = std::getenv("TORCH_THREADS")) torch::set_num_threads(std::atoi(t));
  const char* env_dir = std::getenv("STRATA_FASHION_MNIST");
  const std::string dir = env_dir && *env_dir ? env_dir : "/usr/share/datasets/fashion-mnist";
  torch::manual_seed(42);
  const auto x_train = load(dir + "/train-images-idx3-ubyte.gz", true), y_train = load(dir + "/train-labels-idx1-ubyte.gz", false);
  const auto x_test = load(dir + "/t10k-images-idx3-ubyte.gz", true), y_test = load(dir + "/t10k-labels-idx1-ubyte.gz", false);
  auto net = std::make_shared<Net>();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-3).eps(1e-7));
  const std::int64_t n = x_train.size(0), batch = 128;

  const auto start = Clock::now();
  net->train();
  for (int e = 0; e < epochs; ++e) {
    const auto perm = torch::randperm(n, torch::kInt64);
    for (std::int64_t b = 0; b < n; b += batch) {
      const auto idx = perm.slice(0, b, std::min(b + batch, n));
      adam.zero_grad();
      const auto loss = torch::nll_loss(net->forward(x_train.index_select(0, idx)), y_train.index_select(0, idx));
      loss.backward();
      adam.step();
    }
  }
  const double train_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  net->eval();
  torch::NoGradGuard no_grad;
  const double accuracy = net->forward(x_test).argmax(1).eq(y_test).to(torch::kFloat64).mean().item<double>();
  const auto one = x_test.slice(0, 0, 1).clone();
  std::vector<double> latencies;
  for (int i = 0; i < 1100; ++i) {
    const auto t0 = Clock::now();
    const auto y = net->forward(one).exp();
    (void)y.data_ptr<float>();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (i >= 100) latencies.push_back(us);
  }
  std::nth_element(latencies.begin(), latencies.begin() + std::ptrdiff_t(latencies.size() / 2), latencies.end());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("{{\"framework\": \"libtorch\", \"workload\": \"mlp\", \"epochs\": {}, \"torch_threads\": {}, \"train_seconds\": {:.3f}, "
             "\"samples_per_second\": {:.0f}, \"test_accuracy\": {:.4f}, \"predict_one_us\": {:.1f}, \"peak_rss_mb\": {:.1f}}}\n",
             epochs, torch::get_num_threads(), train_seconds, double(n) * epochs / train_seconds, accuracy,
             latencies[latencies.size() / 2], double(usage.ru_maxrss) / 1024.0);
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_mlp_torch: {}\n", e.what());
  return 1;
}
