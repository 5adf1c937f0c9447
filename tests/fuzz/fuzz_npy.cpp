// NumPy .npy arrays (strata predict --input, and data files in configs).
#include <stdexcept>

#include "cli/arrays.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "array.npy");
  try {
    strata::cli::read_npy(path);
  } catch (const std::exception&) {
  }
  return 0;
}
