// Data-parallel fit across two processes (ctest runs it under mpirun -np 2): with a global batch B the
// processes end with the weights one process reaches with batch B, and with identical weights. Through
// the host (MPI) on the CPU backend, and on the device with a backend that has collectives: the CUDA
// backend's kernels run on the host, with a collective made of MPI in place of NCCL.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>

#include "api/strata.h"
#include "device_on_host.h"

namespace strata {
namespace {

std::atomic<int> device_sums{0};

// Sums with MPI in place: the buffers are host memory, so the collective stands in for NCCL. Like NCCL on
// its own stream, a sum goes on until wait(), so a reducer that read or wrote a bucket before then fails.
class MpiCollective final : public DeviceCollective {
 public:
  void allreduce_sum(float* data, std::int64_t count) override {
    distribution::distribution()->start_allreduce_sum(data, std::size_t(count));
    ++device_sums;
  }
  void wait() override { distribution::distribution()->wait_all(); }
};

class HostDeviceWithCollective : public test::HostDevice {
 public:
  std::vector<std::byte> collective_unique_id() {
    const char tag[] = "mpi-group";
    std::vector<std::byte> id(sizeof(tag));
    std::memcpy(id.data(), tag, sizeof(tag));
    return id;
  }
  std::unique_ptr<DeviceCollective> join_collective(std::span<const std::byte> id, int, int) {
    if (id.size() != sizeof("mpi-group") || std::memcmp(id.data(), "mpi-group", id.size()) != 0)
      throw std::invalid_argument("the chief's group id did not arrive");
    return std::make_unique<MpiCollective>();
  }
};

const bool registered = (register_backend("device_with_collective",
                                          [] {
                                            return std::unique_ptr<Backend>(
                                                new device::DeviceBackend<HostDeviceWithCollective>("device_with_collective"));
                                          }),
                         true);

// Trains Input(features) -> Dense(hidden) -> Dense(3) on 97 rows with global batch 16 in two processes and
// in one, on `backend`, and compares: the same weights (to float tolerance) and logs, identical in both
// processes. 97 rows in batches of 16: the last batch has one row, so one process runs it without rows.
void expect_two_processes_train_as_one(const std::string& backend, int features, int hidden, int epochs) {
  auto dp = std::make_shared<distribution::DataParallel>();
  ASSERT_EQ(dp->num_processes(), 2) << "run under mpirun -np 2";
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.f, 0.5f);
  std::vector<float> xs;
  std::vector<std::int32_t> ys;
  for (int i = 0; i < 97; ++i) {
    ys.push_back(i % 3);
    for (int f = 0; f < features; ++f) xs.push_back((f == i % 3 ? 2.f : 0.f) + noise(rng));
  }
  const Array x = Array::from_floats(xs, {97, features}), y = Array::from_ints(ys, {97});
  auto train = [&](bool parallel) {
    clear_session();
    set_random_seed(7);
    auto model = std::unique_ptr<Sequential>(
        new Sequential({Input({features}), Dense(hidden, {.activation = "tanh"}), Dense(3, {.activation = "softmax"})}));
    model->compile({.optimizer = Adam(AdamOptions{.learning_rate = 0.01}), .loss = "sparse_categorical_crossentropy",
                    .metrics = {"accuracy"}, .backend = backend});
    distribution::set_distribution(parallel ? dp : nullptr);
    const History h = model->fit(x, y, {.epochs = epochs, .batch_size = 16, .verbose = 0});
    distribution::set_distribution(nullptr);
    return std::make_pair(std::move(model), h);
  };
  auto [together, h_together] = train(true);
  auto [alone, h_alone] = train(false);
  const auto a = together->get_weights(), b = alone->get_weights();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto va = a[i].to_floats(), vb = b[i].to_floats();
    std::vector<double> sum(va.begin(), va.end());
    dp->allreduce_sum(sum.data(), sum.size());
    for (std::size_t k = 0; k < va.size(); ++k) {
      ASSERT_NEAR(va[k], vb[k], 1e-5f * (1.f + std::abs(vb[k]))) << "weight " << i << "[" << k << "] on process " << dp->rank();
      ASSERT_EQ(sum[k], 2.0 * double(va[k])) << "the processes' weights differ: weight " << i << "[" << k << "]";
    }
  }
  // The logs are the global batch's, the same in both processes.
  for (const char* key : {"loss", "accuracy"})
    for (std::size_t e = 0; e < std::size_t(epochs); ++e) EXPECT_NEAR(h_together.history.at(key)[e], h_alone.history.at(key)[e], 1e-5) << key;
}

class DataParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallel, TwoProcessesTrainAsOneProcessWithTheGlobalBatch) {
  device_sums = 0;
  expect_two_processes_train_as_one(GetParam(), 5, 8, 3);
  // On the device: all four gradients fit one bucket, summed once per step (3 epochs of 7).
  if (GetParam() == "device_with_collective") EXPECT_EQ(device_sums.load(), 3 * 7);
}

// Gradients of more than a bucket (a 1024 x 1100 kernel is 4.3 MiB) are summed in several buckets per step.
TEST(DataParallelDevice, LargeGradientsSpanSeveralBuckets) {
  device_sums = 0;
  expect_two_processes_train_as_one("device_with_collective", 1024, 1100, 1);
  EXPECT_GT(device_sums.load(), 7);
  EXPECT_EQ(device_sums.load() % 7, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, DataParallel, ::testing::Values(std::string("cpu"), std::string("device_with_collective")),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// BatchNormalization normalises each process's rows by their own statistics; its moving statistics are
// averaged after every step, so the processes still hold identical weights, non-trainable ones included.
TEST(DataParallelStatistics, MovingStatisticsStayIdenticalAcrossProcesses) {
  auto dp = std::make_shared<distribution::DataParallel>();
  ASSERT_EQ(dp->num_processes(), 2) << "run under mpirun -np 2";
  std::vector<float> xs(64 * 4);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = float((i * 37) % 11) - 5.f;
  std::vector<std::int32_t> ys(64);
  for (std::size_t i = 0; i < ys.size(); ++i) ys[i] = std::int32_t(i % 2);
  clear_session();
  set_random_seed(3);
  Sequential model({Input({4}), Dense(6), BatchNormalization(), Activation("relu"), Dense(2, {.activation = "softmax"})});
  model.compile("adam", "sparse_categorical_crossentropy");
  distribution::set_distribution(dp);
  model.fit(Array::from_floats(xs, {64, 4}), Array::from_ints(ys, {64}), {.epochs = 2, .batch_size = 16, .verbose = 0});
  distribution::set_distribution(nullptr);
  for (const Array& w : model.get_weights()) {
    const auto v = w.to_floats();
    std::vector<double> sum(v.begin(), v.end());
    dp->allreduce_sum(sum.data(), sum.size());
    for (std::size_t k = 0; k < v.size(); ++k) EXPECT_FLOAT_EQ(float(sum[k] / 2), v[k]) << "process " << dp->rank();
  }
}

}  // namespace
}  // namespace strata
