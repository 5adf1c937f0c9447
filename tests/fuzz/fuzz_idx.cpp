// IDX files (the MNIST family's format), gzipped or not.
#include <stdexcept>

#include "fuzz_input.h"
#include "io/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "data.idx");
  try {
    strata::io::read_idx(path);
  } catch (const std::exception&) {
  }
  return 0;
}
