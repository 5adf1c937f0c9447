// What every benchmark workload reports: training throughput, test accuracy, the median latency of
// predicting one sample, and peak memory, as one JSON line that bench/run.sh reads.
#pragma once

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

// The median of 1000 timed calls of `predict_one` after 100 untimed ones, in microseconds.
template <class F>
double median_latency_us(F&& predict_one) {
  std::vector<double> latencies;
  for (int i = 0; i < 1100; ++i) {
    const auto t0 = Clock::now();
    predict_one();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (i >= 100) latencies.push_back(us);
  }
  std::nth_element(latencies.begin(), latencies.begin() + std::ptrdiff_t(latencies.size() / 2), latencies.end());
  return latencies[latencies.size() / 2];
}

inline double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;
}

struct Report {
  std::string framework, workload, backend = "cpu";
  int epochs = 1, batch_size = 128;
  int threads = 0;  // libtorch's thread setting; 0: not reported
  double train_seconds = 0, samples = 0, test_accuracy = 0, predict_one_us = 0;
};

inline void print(const Report& r) {
  const std::string threads = r.threads > 0 ? fmt::format("\"torch_threads\": {}, ", r.threads) : std::string();
  fmt::print("{{\"framework\": \"{}\", \"workload\": \"{}\", \"backend\": \"{}\", \"batch_size\": {}, \"epochs\": {}, {}\"train_seconds\": {:.3f}, \"samples_per_second\": {:.0f}, "
             "\"test_accuracy\": {:.4f}, \"predict_one_us\": {:.1f}, \"peak_rss_mb\": {:.1f}}}\n",
             r.framework, r.workload, r.backend, r.batch_size, r.epochs, threads, r.train_seconds, r.samples * r.epochs / r.train_seconds, r.test_accuracy,
             r.predict_one_us, peak_rss_mb());
}

}  // namespace bench
