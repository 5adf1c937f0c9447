// Builds and trains a tiny model through the installed headers and library.
#include <cstdio>

#include "api/strata.h"

using namespace strata;

int main() {
  Sequential model({Input({2}), Dense(4, {.activation = "relu"}), Dense(1, {.activation = "sigmoid"})});
  model.compile("adam", "binary_crossentropy", {"accuracy"});
  const Array x = Array::from_floats({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  const Array y = Array::from_floats({0, 1, 1, 1}, {4, 1});
  const History h = model.fit(x, y, {.epochs = 2, .verbose = 0});
  std::printf("%zu epochs, %lld parameters\n", h.epoch.size(), static_cast<long long>(model.count_params()));
  return h.epoch.size() == 2 && model.count_params() == 17 ? 0 : 1;
}
