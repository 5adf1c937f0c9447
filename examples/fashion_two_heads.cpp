// A functional model with two inputs and two outputs on Fashion-MNIST. Inputs: the image as 28 rows of
// 28 pixels (into an LSTM) and its 56-value profile, the mean of each row and each column (into a Dense
// layer). Outputs: the item (10 classes) and its group (clothing, footwear or bag), each with its own loss,
// weight and accuracy.
//   fashion_two_heads [EPOCHS]     (data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST)
#include <fmt/format.h>

#include <cstdlib>

#include "api/strata.h"

using namespace strata;

namespace {

// Each image's row means, then its column means, scaled to [0, 1].
Array profiles(const Array& images) {
  const auto pixels = images.to_floats();
  const std::int64_t n = images.rows();
  std::vector<float> out(static_cast<std::size_t>(n * 56), 0.f);
  for (std::int64_t i = 0; i < n; ++i)
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) {
        const float v = pixels[std::size_t((i * 28 + r) * 28 + c)] / (255.f * 28.f);
        out[std::size_t(i * 56 + r)] += v;
        out[std::size_t(i * 56 + 28 + c)] += v;
      }
  return Array::from_floats(std::move(out), {n, 56});
}

// Fashion-MNIST's classes grouped: sandals (5), sneakers (7) and ankle boots (9) are footwear, 8 is a bag,
// the rest are clothing.
Array groups(const Array& labels) {
  std::vector<std::int32_t> out;
  for (float y : labels.to_floats()) {
    const int label = int(y);
    out.push_back(label == 5 || label == 7 || label == 9 ? 1 : label == 8 ? 2 : 0);
  }
  return Array::from_ints(std::move(out), {labels.rows()});
}

}  // namespace

int main(int argc, char** argv) try {
  auto [x_train, y_train, x_test, y_test] = datasets::load_fashion_mnist();
  const Tensor rows = Input({28, 28}, {.name = "rows"});
  const Tensor profile = Input({56}, {.name = "profile"});
  Tensor h = Concatenate()({LSTM(64)(rows), Dense(32, {.activation = "relu"})(profile)});
  h = Dropout(0.2f)(h);
  const Tensor item = Dense(10, {.activation = "softmax", .name = "item"})(h);
  const Tensor group = Dense(3, {.activation = "softmax", .name = "group"})(h);
  Model model({rows, profile}, {item, group}, "two_heads");
  model.summary();
  model.compile({.optimizer = "adam",
                 .loss = "sparse_categorical_crossentropy",
                 .loss_weights = {{"group", 0.5f}},
                 .output_metrics = {{"item", {"accuracy"}}, {"group", {"accuracy"}}}});
  model.fit({x_train / 255.f, profiles(x_train)}, {y_train, groups(y_train)},
            {.epochs = argc > 1 ? std::atoi(argv[1]) : 3, .batch_size = 128, .validation_split = 0.1});
  const Logs test = model.evaluate({x_test / 255.f, profiles(x_test)}, {y_test, groups(y_test)}, {.verbose = 0});
  fmt::print("test item accuracy: {:.4f} - test group accuracy: {:.4f} - test loss: {:.4f}\n", test.at("item_accuracy"),
             test.at("group_accuracy"), test.at("loss"));
} catch (const std::exception& e) {
  fmt::print(stderr, "fashion_two_heads: {}\n", e.what());
  return 1;
}
