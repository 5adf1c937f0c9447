// The benchmark workloads in Strata, one epoch each of Fashion-MNIST at batch 128 with Adam 1e-3:
//   mlp: Input(28, 28) -> Flatten -> Dense(256, relu) -> Dense(128, relu) -> Dense(10, softmax)
//   cnn: Keras's mnist_convnet without dropout: Input(28, 28, 1) -> Conv2D(32, 3, relu) -> MaxPooling2D(2)
//        -> Conv2D(64, 3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(10, softmax)
//   lstm: each image as 28 rows of 28 features: Input(28, 28) -> LSTM(128) -> Dense(10, softmax)
//   bench_strata WORKLOAD [EPOCHS] [BACKEND] [BATCH]      prints one JSON line (bench/report.h)
// BACKEND is cpu (default) or cuda; BATCH defaults to 128. On a GPU, ten batches train untimed first, so
// that device start-up, cuBLAS handles and the first plan are not counted (bench/torch_gpu.py does the same).
#include <cstdlib>
#include <memory>
#include <string>

#include "api/strata.h"
#include "bench/report.h"

using namespace strata;

int main(int argc, char** argv) try {
  const std::string workload = argc > 1 ? argv[1] : "mlp";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 1;
  const std::string backend = argc > 3 ? argv[3] : "cpu";
  const int batch_size = argc > 4 ? std::atoi(argv[4]) : 128;
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  set_random_seed(42);
  std::unique_ptr<Sequential> net;
  if (workload == "mlp") {
    net = std::make_unique<Sequential>(std::vector<LayerRef>{Input({28, 28}), Flatten(), Dense(256, {.activation = "relu"}),
                                                             Dense(128, {.activation = "relu"}), Dense(10, {.activation = "softmax"})});
  } else if (workload == "cnn") {
    x_train = x_train.reshaped({x_train.rows(), 28, 28, 1});
    x_test = x_test.reshaped({x_test.rows(), 28, 28, 1});
    net = std::make_unique<Sequential>(std::vector<LayerRef>{Input({28, 28, 1}), Conv2D(32, 3, {.activation = "relu"}), MaxPooling2D(2),
                                                             Conv2D(64, 3, {.activation = "relu"}), MaxPooling2D(2), Flatten(),
                                                             Dense(10, {.activation = "softmax"})});
  } else if (workload == "lstm") {
    net = std::make_unique<Sequential>(std::vector<LayerRef>{Input({28, 28}), LSTM(128), Dense(10, {.activation = "softmax"})});
  } else {
    throw std::invalid_argument("unknown workload '" + workload + "' (mlp, cnn or lstm)");
  }
  Sequential& model = *net;
  model.compile({.optimizer = Adam(AdamOptions{.learning_rate = 1e-3}), .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}, .backend = backend});
  if (backend != "cpu") {
    const std::int64_t warm = std::min<std::int64_t>(10 * batch_size, x_train.rows());
    model.fit(x_train.slice_rows(0, warm) / 255.f, y_train.slice_rows(0, warm), {.epochs = 1, .batch_size = batch_size, .verbose = 0});
  }

  bench::Report r{.framework = "strata", .workload = workload, .backend = backend, .epochs = epochs, .batch_size = batch_size,
                  .samples = double(x_train.rows())};
  const auto start = bench::Clock::now();
  model.fit(x_train / 255.f, y_train, {.epochs = epochs, .batch_size = batch_size, .verbose = 0});
  r.train_seconds = std::chrono::duration<double>(bench::Clock::now() - start).count();
  r.test_accuracy = model.evaluate(x_test / 255.f, y_test, {.batch_size = batch_size, .verbose = 0}).at("accuracy");
  const Array one = x_test.slice_rows(0, 1) / 255.f;
  r.predict_one_us = bench::median_latency_us([&] { (void)model.predict(one, {.verbose = 0}); });
  bench::print(r);
} catch (const std::exception& e) {
  fmt::print(stderr, "bench_strata: {}\n", e.what());
  return 1;
}
