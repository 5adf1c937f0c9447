// HDF5 files from outside: a whole model (.h5, legacy Keras layout) through load_model, and weights files
// (legacy .h5 and Keras 3's .weights.h5 layout) into a small fixed model through load_weights.
#include <memory>
#include <stdexcept>

#include "api/strata.h"
#include "fuzz_input.h"

namespace {

std::unique_ptr<strata::Model> weights_target() {
  using namespace strata;
  auto model = std::unique_ptr<Sequential>(new Sequential({Input({6}), Dense(4, {.activation = "relu"}), Dense(2)}));
  model->compile("adam", "mse");
  return model;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "model.h5");
  try {
    strata::load_model(path);
  } catch (const std::exception&) {
  }
  static const std::unique_ptr<strata::Model> model = weights_target();
  try {
    model->load_weights(path);
  } catch (const std::exception&) {
  }
  return 0;
}
