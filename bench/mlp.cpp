// The MLP workload: Input(28, 28) -> Flatten -> Dense(256, relu) -> Dense(128, relu) -> Dense(10, softmax),
// Adam 1e-3, batch 128, one epoch of Fashion-MNIST. Prints one JSON line.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "api/strata.h"

using namespace strata;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) try {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 1;
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  set_random_seed(42);
  Sequential model({Input({28, 28}), Flatten(), Dense(256, {.activation = "relu"}), Dense(128, {.activation = "relu"}),
                    Dense(10, {.activation = "softmax"})});
  model.compile(Adam(AdamOptions{.learning_rate = 1e-3}), "sparse_categorical_crossentropy", {"accuracy"});

  const auto start = Clock::now();
  model.fit(x_train / 255.f, y_train, {.epochs = epochs, .batch_size = 128, .verbose = 0});
  const double train_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double accuracy = model.evaluate(x_test / 255.f, y_test, {.batch_size = 128, .verbose = 0}).at("accuracy");

  // Latency of predict() on one sample, the median of many calls after a warm-up.
  const Array one = x_test.slice_rows(0, 1) / 255.f;
  std::vector<double> latencies;
  for (int i = 0; i < 1100; ++i) {
    const auto t0 = Clock::now();
    const Array y = model.predict(one, {.verbose = 0});
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (i >= 100) latencies.push_back(us);
  }
  std::nth_element(latencies.begin(), latencies.begin() + std::ptrdiff_t(latencies.size() / 2), latencies.end());

  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("{{\"framework\": \"strata\", \"workload\": \"mlp\", \"epochs\": {}, \"train_seconds\": {:.3f}, \"samples_per_second\": {:.0f}, "
             "\"test_accuracy\": {:.4f}, \"predict_one_us\": {:.1f}, \"peak_rss_mb\": {:.1f}}}\n",
             epochs, train_seconds, double(x_train.rows()) * epochs / train_seconds, accuracy,
             latencies[latencies.size() / 2], double(usage.ru_maxrss) / 1024.0);
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_mlp: {}\n", e.what());
  return 1;
}
