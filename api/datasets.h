// Built-in datasets, as keras.datasets: Fashion-MNIST from Debian's dataset-fashion-mnist package.
#pragma once

#include <string>

#include "api/array.h"

namespace strata::datasets {

struct ImageClassification {
  Array x_train, y_train, x_test, y_test;  // images uint8 (n, 28, 28), labels uint8 (n,)
};

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The four IDX files (gzipped or not) of `directory`; STRATA_FASHION_MNIST overrides the default.
ImageClassification load_fashion_mnist(std::string directory = "");

}  // namespace strata::datasets
