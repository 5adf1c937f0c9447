// Keras's "mnist_convnet" on Fashion-MNIST: two Conv2D + MaxPooling2D blocks, Dropout(0.5), Dense(10);
// with "bn", a BatchNormalization after each convolution (the convolution then has no bias and the
// ReLU follows the normalisation).
//   fashion_cnn [EPOCHS] [bn] [cuda]     (data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST)
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "api/strata.h"

using namespace strata;

int main(int argc, char** argv) try {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 15;
  const bool batch_norm = argc > 2 && std::string(argv[2]) == "bn";
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  x_train = x_train.reshaped({x_train.rows(), 28, 28, 1}) / 255.f;  // add the channel axis, as np.expand_dims
  x_test = x_test.reshaped({x_test.rows(), 28, 28, 1}) / 255.f;

  std::vector<LayerRef> layers{Input({28, 28, 1})};
  for (int filters : {32, 64}) {
    if (batch_norm) {
      layers.insert(layers.end(), {Conv2D(filters, 3, {.use_bias = false}), BatchNormalization(), Activation("relu")});
    } else {
      layers.push_back(Conv2D(filters, 3, {.activation = "relu"}));
    }
    layers.push_back(MaxPooling2D(2));
  }
  layers.insert(layers.end(), {Flatten(), Dropout(0.5f), Dense(10, {.activation = "softmax"})});
  Sequential model(layers);
  model.summary();
  // One word moves the model to the GPU: "cuda" anywhere on the command line.
  const bool cuda = std::find(argv + 1, argv + argc, std::string("cuda")) != argv + argc;
  model.compile({.optimizer = Adam(), .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}, .backend = cuda ? "cuda" : "cpu"});
  model.fit(x_train, y_train, {.epochs = epochs, .batch_size = 128, .validation_split = 0.1});
  const Logs test = model.evaluate(x_test, y_test, {.verbose = 0});
  fmt::print("test accuracy: {:.4f} - test loss: {:.4f}\n", test.at("accuracy"), test.at("loss"));
} catch (const std::exception& e) {
  fmt::print(stderr, "fashion_cnn: {}\n", e.what());
  return 1;
}
