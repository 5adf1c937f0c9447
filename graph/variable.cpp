#include "graph/variable.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace strata {

Variable::Variable(std::string name, Shape shape, DType dtype, bool trainable, Backend* backend)
    : name_(std::move(name)), shape_(shape), dtype_(dtype), trainable_(trainable) {
  if (!shape_.is_fully_known())
    throw std::invalid_argument(fmt::format("variable '{}': shape {} must be fully known", name_, shape_.to_string()));
  Backend& b = backend ? *backend : get_backend("cpu");
  const std::size_t bytes = std::size_t(shape_.numel()) * dtype_size(dtype_);
  b.check_fits(bytes, fmt::format("variable '{}' of shape {}", name_, shape_.to_string()));
  storage_ = DeviceBuffer(b, bytes);
  b.fill(view(), 0.f);
}

TensorView Variable::view(Backend& backend) {
  if (storage_.backend() != &backend) move_to(backend);
  return view();
}

void Variable::move_to(Backend& backend) {
  if (storage_.backend() == &backend) return;
  std::vector<std::byte> host(storage_.bytes());
  storage_.backend()->copy_to_host(host.data(), storage_.data(), host.size());
  DeviceBuffer moved(backend, host.size());
  backend.copy_to_device(moved.data(), host.data(), host.size());
  storage_ = std::move(moved);
}

void Variable::assign(std::span<const float> values) {
  if (dtype_ != DType::float32 || std::int64_t(values.size()) != shape_.numel())
    throw std::invalid_argument(fmt::format("variable '{}' of shape {}: cannot assign {} float values", name_,
                                            shape_.to_string(), values.size()));
  storage_.backend()->copy_to_device(storage_.data(), values.data(), values.size_bytes());
}

std::vector<float> Variable::to_vector() const {
  if (dtype_ != DType::float32)
    throw std::invalid_argument(fmt::format("variable '{}' holds {}, not float32", name_, dtype_name(dtype_)));
  std::vector<float> out(std::size_t(shape_.numel()));
  storage_.backend()->copy_to_host(out.data(), storage_.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace strata
