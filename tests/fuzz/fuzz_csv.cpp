// CSV data with a header row: every column, and named columns when the header has them.
#include <stdexcept>

#include "cli/arrays.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = strata::fuzz::input_file(data, size, "data.csv");
  try {
    strata::cli::read_csv_columns(path, {});
  } catch (const std::exception&) {
  }
  try {
    strata::cli::read_csv_columns(path, {"y"}, {});
  } catch (const std::exception&) {
  }
  return 0;
}
