// .keras archives: the zip container (traversal, bombs, declared sizes), config.json, metadata.json and
// the model.weights.h5 inside, through load_model.
#include <stdexcept>

#include "api/strata.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "model.keras");
  try {
    strata::load_model(path);
  } catch (const std::exception&) {
  }
  return 0;
}
