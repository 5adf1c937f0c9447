// A sequence classifier on Fashion-MNIST: each image read as 28 rows of 28 features by an LSTM(128),
// then Dense(10, softmax); Adam, batch 64, as Keras would write it.
//   fashion_lstm [EPOCHS] [cuda]     (data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST)
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "api/strata.h"

using namespace strata;

int main(int argc, char** argv) try {
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();  // (N, 28, 28): rows as steps
  Sequential model({Input({28, 28}), LSTM(128), Dense(10, {.activation = "softmax"})});
  model.summary();
  // One word moves the model to the GPU: "cuda" anywhere on the command line.
  const bool cuda = std::find(argv + 1, argv + argc, std::string("cuda")) != argv + argc;
  model.compile({.optimizer = Adam(), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}, .backend = cuda ? "cuda" : "cpu"});
  model.fit(x_train / 255.f, y_train, {.epochs = argc > 1 ? std::atoi(argv[1]) : 10, .batch_size = 64, .validation_split = 0.1});
  const Logs test = model.evaluate(x_test / 255.f, y_test, {.verbose = 0});
  fmt::print("test accuracy: {:.4f} - test loss: {:.4f}\n", test.at("accuracy"), test.at("loss"));
} catch (const std::exception& e) {
  fmt::print(stderr, "fashion_lstm: {}\n", e.what());
  return 1;
}
