#include "backends/backend.h"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace strata {

StridedView StridedView::contiguous(const TensorView& v) {
  StridedView s;
  s.data = v.data;
  s.dtype = v.dtype;
  s.shape = v.shape;
  s.strides = contiguous_strides(v.shape);
  return s;
}

std::string_view unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::negative: return "negative";
    case UnaryOp::abs: return "abs";
    case UnaryOp::sign: return "sign";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::log1p: return "log1p";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::rsqrt: return "rsqrt";
    case UnaryOp::square: return "square";
    case UnaryOp::reciprocal: return "reciprocal";
    case UnaryOp::erf: return "erf";
    case UnaryOp::relu: return "relu";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::elu: return "elu";
    case UnaryOp::selu: return "selu";
    case UnaryOp::softplus: return "softplus";
    case UnaryOp::softsign: return "softsign";
    case UnaryOp::leaky_relu: return "leaky_relu";
    case UnaryOp::silu: return "silu";
    case UnaryOp::hard_sigmoid: return "hard_sigmoid";
    case UnaryOp::sin: return "sin";
    case UnaryOp::cos: return "cos";
  }
  return "unknown";
}

bool unary_backward_uses_output(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp:
    case UnaryOp::sqrt:
    case UnaryOp::rsqrt:
    case UnaryOp::reciprocal:
    case UnaryOp::sigmoid:
    case UnaryOp::tanh:
      return true;
    default:
      return false;
  }
}

std::string_view binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::subtract: return "subtract";
    case BinaryOp::multiply: return "multiply";
    case BinaryOp::divide: return "divide";
    case BinaryOp::power: return "power";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::minimum: return "minimum";
    case BinaryOp::greater: return "greater";
    case BinaryOp::greater_equal: return "greater_equal";
    case BinaryOp::less: return "less";
    case BinaryOp::less_equal: return "less_equal";
    case BinaryOp::equal: return "equal";
    case BinaryOp::not_equal: return "not_equal";
  }
  return "unknown";
}

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "unknown";
}

std::string_view rnn_cell_op_name(RnnCellOp op) {
  switch (op) {
    case RnnCellOp::lstm: return "lstm_cell";
    case RnnCellOp::lstm_grad_z: return "lstm_cell_grad_z";
    case RnnCellOp::lstm_grad_c: return "lstm_cell_grad_c";
    case RnnCellOp::gru: return "gru_cell";
    case RnnCellOp::gru_grad_x: return "gru_cell_grad_x";
    case RnnCellOp::gru_grad_r: return "gru_cell_grad_r";
    case RnnCellOp::gru_grad_h: return "gru_cell_grad_h";
  }
  return "unknown";
}

AllocationStats Backend::stats() const {
  return AllocationStats{allocations_.load(), live_bytes_.load(), peak_bytes_.load()};
}

void Backend::record_allocation(std::size_t bytes) {
  allocations_.fetch_add(1);
  const auto live = live_bytes_.fetch_add(std::int64_t(bytes)) + std::int64_t(bytes);
  auto peak = peak_bytes_.load();
  while (live > peak && !peak_bytes_.compare_exchange_weak(peak, live)) {
  }
}

void Backend::check_fits(std::size_t bytes, std::string_view what) const {
  std::optional<MemoryBudget> budget = memory_available();
  if (const auto cap = memory_limit_override()) {
    const auto live = std::size_t(std::max<std::int64_t>(live_bytes_.load(), 0));
    const std::size_t left = *cap > live ? *cap - live : 0;
    if (!budget || left < budget->bytes)
      budget = MemoryBudget{left, fmt::format("STRATA_MEMORY_LIMIT_MB={} with {} in use", *cap >> 20, format_bytes(live))};
  }
  if (budget && bytes > budget->bytes)
    throw OutOfMemoryError(fmt::format("{} needs {}, but only {} of memory is available on the {} backend ({})", what,
                                       format_bytes(bytes), format_bytes(budget->bytes), name(), budget->source));
}

std::unique_ptr<DeviceCollective> Backend::join_collective(std::span<const std::byte>, int, int) {
  throw std::logic_error(fmt::format("the {} backend has no device collectives", name()));
}

void Backend::record_deallocation(std::size_t bytes) { live_bytes_.fetch_sub(std::int64_t(bytes)); }

namespace {

struct Registration {
  BackendFactory factory = nullptr;
  std::string (*unavailable_reason)() = nullptr;
  std::unique_ptr<Backend> instance;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Registration, std::less<>> entries;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

// Defined by each backend's translation unit; referencing them here keeps static linking from dropping
// the registrations.
void register_cpu_backend();
#ifdef STRATA_WITH_CUDA
void register_cuda_backend();
#endif

static void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_cpu_backend();
#ifdef STRATA_WITH_CUDA
    register_cuda_backend();
#endif
  });
}

void register_backend(std::string_view name, BackendFactory factory, std::string (*unavailable_reason)()) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto& entry = r.entries[std::string(name)];
  entry.factory = factory;
  entry.unavailable_reason = unavailable_reason;
}

std::vector<std::string> available_backends() {
  register_builtin_backends();
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (auto& [name, entry] : r.entries)
    if (!entry.unavailable_reason || entry.unavailable_reason().empty()) names.push_back(name);
  return names;
}

Backend& get_backend(std::string_view name) {
  register_builtin_backends();
  auto& r = registry();
  std::unique_lock lock(r.mutex);
  auto it = r.entries.find(name);
  if (it == r.entries.end()) {
    std::string known;
    for (auto& [n, e] : r.entries) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument(fmt::format("unknown backend '{}'; this build has: {}", name, known));
  }
  auto& entry = it->second;
  if (!entry.instance) {
    if (entry.unavailable_reason) {
      const std::string reason = entry.unavailable_reason();
      if (!reason.empty()) throw std::runtime_error(fmt::format("backend '{}' is unavailable: {}", name, reason));
    }
    entry.instance = entry.factory();
  }
  return *entry.instance;
}

DeviceBuffer::DeviceBuffer(Backend& backend, std::size_t bytes)
    : backend_(&backend), data_(bytes ? backend.allocate(bytes) : nullptr), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() {
  if (data_) backend_->deallocate(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : backend_(std::exchange(other.backend_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) backend_->deallocate(data_);
    backend_ = std::exchange(other.backend_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

}  // namespace strata
