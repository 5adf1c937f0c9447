#include "api/datasets.h"

#include <cstdlib>
#include <filesystem>

#include "io/idx.h"

namespace strata::datasets {

namespace {

Array read(const std::string& directory, const std::string& stem) {
  // Debian ships gzipped files; an unpacked copy works too.
  std::string path = directory + "/" + stem + ".gz";
  if (!std::filesystem::exists(path) && std::filesystem::exists(directory + "/" + stem)) path = directory + "/" + stem;
  io::IdxArray idx = io::read_idx(path);
  Shape shape;
  for (auto d : idx.shape) shape.push_back(d);
  return Array::from_bytes(std::move(idx.data), shape);
}

}  // namespace

ImageClassification load_fashion_mnist(std::string directory) {
  if (directory.empty()) {
    const char* env = std::getenv("STRATA_FASHION_MNIST");
    directory = env && *env ? env : kFashionMnistDir;
  }
  return {read(directory, "train-images-idx3-ubyte"), read(directory, "train-labels-idx1-ubyte"),
          read(directory, "t10k-images-idx3-ubyte"), read(directory, "t10k-labels-idx1-ubyte")};
}

}  // namespace strata::datasets
