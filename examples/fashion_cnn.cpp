// Keras's "mnist_convnet" on Fashion-MNIST: two Conv2D + MaxPooling2D blocks, Dropout(0.5), Dense(10),
// Adam, batch 128. With "bn", a BatchNormalization after each convolution (after its ReLU).
//
// The default recipe trains on all 60,000 training images with Adam's learning rate following a cosine
// from 3e-3 to 0 over the run (keras.optimizers.schedules.CosineDecay) and shows the test set each
// epoch. "keras" trains as Keras's example does instead: constant 1e-3, validation_split 0.1, which
// stops near 0.90 test accuracy after 15 epochs in Keras and in Strata alike.
//   fashion_cnn [EPOCHS] [bn] [keras] [cuda]   (data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST)
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "api/strata.h"

using namespace strata;

int main(int argc, char** argv) try {
  auto has_word = [&](const char* word) { return std::find(argv + 1, argv + argc, std::string(word)) != argv + argc; };
  const int epochs = argc > 1 && std::atoi(argv[1]) > 0 ? std::atoi(argv[1]) : 15;
  const bool batch_norm = has_word("bn"), keras_recipe = has_word("keras");
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  x_train = x_train.reshaped({x_train.rows(), 28, 28, 1}) / 255.f;  // add the channel axis, as np.expand_dims
  x_test = x_test.reshaped({x_test.rows(), 28, 28, 1}) / 255.f;

  std::vector<LayerRef> layers{Input({28, 28, 1})};
  for (int filters : {32, 64}) {
    layers.push_back(Conv2D(filters, 3, {.activation = "relu"}));
    if (batch_norm) layers.push_back(BatchNormalization());
    layers.push_back(MaxPooling2D(2));
  }
  layers.insert(layers.end(), {Flatten(), Dropout(0.5f), Dense(10, {.activation = "softmax"})});
  Sequential model(layers);
  model.summary();

  const int batch_size = 128;
  const double steps = double((x_train.rows() + batch_size - 1) / batch_size) * epochs;
  const LearningRate learning_rate = keras_recipe ? LearningRate(1e-3) : LearningRate(schedules::CosineDecay(3e-3, steps));
  // One word moves the model to the GPU: "cuda" anywhere on the command line.
  model.compile({.optimizer = Adam({.learning_rate = learning_rate}), .loss = "sparse_categorical_crossentropy",
                 .metrics = {"accuracy"}, .backend = has_word("cuda") ? "cuda" : "cpu"});
  FitOptions fit{.epochs = epochs, .batch_size = batch_size};
  if (keras_recipe)
    fit.validation_split = 0.1;
  else
    fit.validation_data = ValidationData{.x = {x_test}, .y = {y_test}};
  model.fit(x_train, y_train, fit);
  const Logs test = model.evaluate(x_test, y_test, {.verbose = 0});
  fmt::print("test accuracy: {:.4f} - test loss: {:.4f}\n", test.at("accuracy"), test.at("loss"));
} catch (const std::exception& e) {
  fmt::print(stderr, "fashion_cnn: {}\n", e.what());
  return 1;
}
