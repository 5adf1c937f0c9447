// The strata command's YAML config: parsed, checked, and the model it describes built and compiled (data
// files are not read, so the input alone decides what happens).
#include <stdexcept>

#include "cli/run_config.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "config.yaml");
  try {
    strata::cli::read_run_config(path, {}, /*load_data=*/false, strata::fuzz::scratch_directory().string());
  } catch (const std::exception&) {
  }
  return 0;
}
