// Keras's serialized model config (config.json of a .keras file, model_config of an .h5 file).
#include <stdexcept>
#include <string>

#include "api/strata.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ::setenv("STRATA_MEMORY_LIMIT_MB", "1024", 0);
  try {
    const auto json = strata::Json::parse(std::string(reinterpret_cast<const char*>(data), size));
    strata::model_from_json(json);
  } catch (const std::exception&) {
  }
  return 0;
}
