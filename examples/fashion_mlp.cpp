// The Keras MLP on Fashion-MNIST: Input(28, 28) -> Flatten -> Dense(256) -> Dense(128) -> Dense(10).
//   fashion_mlp [EPOCHS] [cuda]     (data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST)
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "api/strata.h"

using namespace strata;

int main(int argc, char** argv) try {
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  Sequential model({Input({28, 28}), Flatten(), Dense(256, {.activation = "relu"}), Dense(128, {.activation = "relu"}),
                    Dense(10, {.activation = "softmax"})});
  model.summary();
  // One word moves the model to the GPU: "cuda" anywhere on the command line.
  const bool cuda = std::find(argv + 1, argv + argc, std::string("cuda")) != argv + argc;
  model.compile({.optimizer = Adam(), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}, .backend = cuda ? "cuda" : "cpu"});
  model.fit(x_train / 255.f, y_train, {.epochs = argc > 1 ? std::atoi(argv[1]) : 10, .batch_size = 128, .validation_split = 0.1});
  const Logs test = model.evaluate(x_test / 255.f, y_test, {.verbose = 0});
  fmt::print("test accuracy: {:.4f} - test loss: {:.4f}\n", test.at("accuracy"), test.at("loss"));
} catch (const std::exception& e) {
  fmt::print(stderr, "fashion_mlp: {}\n", e.what());
  return 1;
}
