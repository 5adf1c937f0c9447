// Running reference Python (Keras, h5py) from tests, which skip when it is not installed.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

namespace strata::test {

inline int run_python(const std::string& python, const std::string& script) {
  // A name of this process's own: ctest runs test programs side by side.
  static int counter = 0;
  const std::string file = ::testing::TempDir() + "check_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".py";
  std::ofstream(file) << script;
  return std::system((python + " " + file).c_str());
}

inline bool python_has(const std::string& python, const std::string& module) {
  return std::system((python + " -c 'import " + module + "' > /dev/null 2>&1").c_str()) == 0;
}

// The Python that has Keras 3: $STRATA_KERAS_PYTHON, else python3 when it can import keras; empty otherwise.
inline std::string keras_python() {
  setenv("KERAS_BACKEND", "jax", 0);  // unless the environment names another backend
  const char* env = std::getenv("STRATA_KERAS_PYTHON");
  const std::string python = env && *env ? env : "python3";
  return python_has(python, "keras") ? python : std::string();
}

}  // namespace strata::test
