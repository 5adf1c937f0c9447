// The one abstract interface between Strata and a compute device: storage, copies and tensor primitives.
//
// Everything above backends/ (graph, autodiff, layers, optimizers) speaks only this interface, so a new
// device is a new subclass and nothing else. Tensors cross it as views: a device pointer, a dtype and a
// shape (row-major, contiguous unless a stride is given). Backends never allocate the outputs of a
// primitive: the caller owns every buffer, which is what lets the planner reuse memory by lifetime.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/dtype.h"
#include "backends/memory.h"
#include "backends/shape.h"

namespace strata {

// A contiguous row-major tensor in a backend's memory.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::float32;
  Shape shape;

  std::int64_t numel() const { return shape.numel(); }
  std::size_t bytes() const { return std::size_t(numel()) * dtype_size(dtype); }
  template <class T> T* as() const { return static_cast<T*>(data); }
};

// A tensor addressed through explicit element strides (which may be zero for broadcasting).
struct StridedView {
  void* data = nullptr;  // points at element (0, ..., 0)
  DType dtype = DType::float32;
  Shape shape;
  std::array<std::int64_t, kMaxRank> strides{};

  static StridedView contiguous(const TensorView& v);
};

// cos stays last: test_cuda runs every op up to it.
enum class UnaryOp : std::uint8_t {
  negative, abs, sign, exp, log, log1p, sqrt, rsqrt, square, reciprocal, erf,
  relu, sigmoid, tanh, gelu, gelu_tanh, elu, selu, softplus, softsign, leaky_relu, silu, hard_sigmoid, sin, cos,
};
std::string_view unary_op_name(UnaryOp op);
// Whether unary_backward needs the forward output y (otherwise it reads only x).
bool unary_backward_uses_output(UnaryOp op);

enum class BinaryOp : std::uint8_t {
  add, subtract, multiply, divide, power, maximum, minimum,
  // Comparisons write 1 where true and 0 where false, in the output's dtype.
  greater, greater_equal, less, less_equal, equal, not_equal,
};
std::string_view binary_op_name(BinaryOp op);

enum class ReduceOp : std::uint8_t { sum, mean, max, min };
std::string_view reduce_op_name(ReduceOp op);

enum class PoolKind : std::uint8_t { max, average };

// Fused recurrent cells (Keras's defaults: sigmoid gates, tanh activation), one batch of one step. Rows
// are samples; u is the number of units. Inputs and outputs, in order:
//   lstm            z (4u: i f c o pre-activations), c_prev (u)        -> h (u), c (u)
//   lstm_grad_z     z, c_prev, c, dh, dc                               -> dz (4u)
//   lstm_grad_c     z, c, dh, dc                                       -> dc_prev (u)
//   gru             x (3u: z r h input projections), r (3u: recurrent products with their bias),
//                   h_prev (u)                                         -> h (u)   (reset after the product)
//   gru_grad_x      x, r, h_prev, dh                                   -> dx (3u)
//   gru_grad_r      x, r, h_prev, dh                                   -> dr (3u)
//   gru_grad_h      x, r, h_prev, dh                                   -> dh_prev (u)
enum class RnnCellOp : std::uint8_t { lstm, lstm_grad_z, lstm_grad_c, gru, gru_grad_x, gru_grad_r, gru_grad_h };
std::string_view rnn_cell_op_name(RnnCellOp op);

enum class RandomKind : std::uint8_t {
  uniform,       // a <= x < b
  normal,        // mean a, standard deviation b
  keep_mask,     // 1/a with probability a (the keep probability), else 0: an inverted-dropout mask
};

struct GemmArgs {
  bool transpose_a = false, transpose_b = false;
  std::int64_t m = 0, n = 0, k = 0;  // C is m x n, op(A) is m x k, op(B) is k x n
  float alpha = 1.f, beta = 0.f;
  const float* a = nullptr;
  std::int64_t lda = 0;
  const float* b = nullptr;
  std::int64_t ldb = 0;
  float* c = nullptr;
  std::int64_t ldc = 0;
  std::int64_t batch = 1;  // batch > 1: the same product repeated at these element strides
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};

// 2-D convolution or pooling window geometry. Inputs are NHWC; a 1-D operation uses height 1.
struct Window2D {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t pad_top = 0, pad_left = 0;
  // Kernels take bottom/right padding from the output size; graph shape inference reads these.
  std::int64_t pad_bottom = 0, pad_right = 0;
  std::int64_t groups = 1;                 // convolution only
};

enum class OptimizerKind : std::uint8_t { sgd, adam, rmsprop, adagrad, nadam, adamax, lion, adadelta, ftrl, lamb, adafactor };

// Per-step coefficients of a fused optimizer update; the host computes the step-dependent ones so
// that every backend applies exactly the same arithmetic. Slots are the optimizer's per-variable state:
//   sgd      [velocity] when momentum > 0
//   adam     [m, v] (+ [v_hat] with amsgrad)
//   rmsprop  [velocity] (+ [momentum] when momentum > 0) (+ [average_gradient] when centered)
//   adagrad  [accumulator]
//   nadam    [m, v]
//   adamax   [m, u] (u the exponentially weighted infinity norm)
//   lion     [m]
//   adadelta [accumulated_grad, accumulated_delta_var]
//   ftrl     [accumulator, linear]
//   lamb     [m, v]
//   adafactor [r, c, v]: for a parameter of shape (..., rows, cols), r has shape (..., rows) and c (..., cols),
//            the factored second moment; for one of rank 0 or 1 both are scalars the rule leaves alone
// followed, with `ema` set, by the parameter's moving average (Keras's use_ema).
struct OptimizerUpdate {
  OptimizerKind kind = OptimizerKind::sgd;
  float learning_rate = 0.01f;
  float weight_decay = 0.f;  // decoupled: p -= p * weight_decay * learning_rate, before the update
  float momentum = 0.f;      // sgd, rmsprop
  bool nesterov = false;     // sgd
  float beta_1 = 0.9f, beta_2 = 0.999f;  // adam, nadam, adamax, lion
  float epsilon = 1e-7f;
  bool amsgrad = false;  // adam
  bool centered = false; // rmsprop
  float rho = 0.9f;      // rmsprop, adadelta
  // Step-dependent, filled by the host: adam's alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), adamax's
  // lr / (1 - beta_1^t); nadam's momentum-cache terms.
  float adam_alpha = 0.f;
  float nadam_m_coef = 0.f, nadam_g_coef = 0.f, nadam_v_coef = 0.f;
  // lamb's bias corrections 1 - beta_1^t and 1 - beta_2^t.
  float correction_1 = 1.f, correction_2 = 1.f;
  // ftrl: learning_rate_power (<= 0) and the regularization strengths.
  float lr_power = -0.5f, l1 = 0.f, l2 = 0.f, l2_shrinkage = 0.f, ftrl_beta = 0.f;
  // adafactor: epsilon_1 (added to the squared gradient), epsilon_2 (the least parameter scale), clip_threshold,
  // beta_2_decay; step-dependent, filled by the host: the relative step min(lr, 1 / sqrt(t)) and the decay
  // 1 - t^beta_2_decay.
  float epsilon_1 = 1e-30f, epsilon_2 = 1e-3f, clip_threshold = 1.f, beta_2_decay = -0.8f;
  float relative_step = 0.f, decay_2 = 0.f;
  // After the step: average = ema_momentum * average + (1 - ema_momentum) * param. The host passes 0 on the
  // first step, so that the average starts at the parameter, as Keras does.
  bool ema = false;
  float ema_momentum = 0.f;
};

struct AllocationStats {
  std::int64_t allocations = 0;  // calls to allocate(), including internal scratch growth
  std::int64_t live_bytes = 0;
  std::int64_t peak_bytes = 0;
};

// Sums float32 buffers across the processes of a data-parallel run without leaving the device (NCCL on the
// CUDA backend). Every process calls allreduce_sum in the same order with the same counts.
class DeviceCollective {
 public:
  virtual ~DeviceCollective() = default;
  // In place, after the work issued so far on the backend; it may run beside work issued later (NCCL runs
  // on a stream of its own), so `data` must not be touched until wait().
  virtual void allreduce_sum(float* data, std::int64_t count) = 0;
  // Orders the work issued after it behind every sum started so far.
  virtual void wait() {}
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- storage ----
  // Device memory of at least `bytes`, aligned to 64 bytes. Counted in stats().
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual void copy_to_device(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  // Blocks until every primitive issued so far has finished.
  virtual void synchronize() {}
  AllocationStats stats() const;
  // Memory this backend can still hand out: the host's for the CPU; a device backend reports its own.
  virtual std::optional<MemoryBudget> memory_available() const { return host_memory_available(); }
  // Throws OutOfMemoryError, naming `what` and both sizes, when `bytes` more would not fit in
  // memory_available() or, with STRATA_MEMORY_LIMIT_MB set, under that cap with what is live already.
  void check_fits(std::size_t bytes, std::string_view what) const;

  // ---- element-wise ----
  // out[i] = value, converted to out's dtype.
  virtual void fill(const TensorView& out, Scalar value) = 0;
  // out = in converted element by element to out's dtype (same shape).
  virtual void cast(const TensorView& in, const TensorView& out) = 0;
  // dst[idx] (+)= src[idx] for every index of dst's shape, both addressed through their strides. This one
  // primitive is transpose, slice, concatenation, padding and broadcast-to; `accumulate` adds instead of
  // overwriting (gradient of a broadcast or an overlapping slice).
  virtual void copy_strided(const StridedView& src, const StridedView& dst, bool accumulate) = 0;
  // y = op(x); alpha parameterizes elu and leaky_relu.
  virtual void unary(UnaryOp op, const TensorView& x, const TensorView& y, float alpha) = 0;
  // dx = dy * op'(x), reading y = op(x) where the derivative is cheaper from it.
  virtual void unary_backward(UnaryOp op, const TensorView& x, const TensorView& y, const TensorView& dy,
                              const TensorView& dx, float alpha) = 0;
  // out = a op b with NumPy broadcasting: a and b have out's rank and each dimension equals out's or is 1.
  virtual void binary(BinaryOp op, const TensorView& a, const TensorView& b, const TensorView& out) = 0;

  // ---- linear algebra ----
  // C = alpha * op(A) op(B) + beta * C, row-major float32, repeated `batch` times at the given strides.
  virtual void gemm(const GemmArgs& args) = 0;

  // ---- reductions ----
  // out has in's rank; each of its dimensions equals in's (kept) or is 1 (reduced over).
  virtual void reduce(ReduceOp op, const TensorView& in, const TensorView& out) = 0;
  // out (int32 or int64, in's shape without `axis`) = index of the first maximum along axis.
  virtual void argmax(const TensorView& in, const TensorView& out, int axis) = 0;
  // y = softmax(x) (or log_softmax) along axis, computed stably.
  virtual void softmax(const TensorView& x, const TensorView& y, int axis, bool log) = 0;
  // dx from dy and the forward output y: y * (dy - sum(dy * y)) for softmax, dy - exp(y) * sum(dy) for log.
  virtual void softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx, int axis,
                                bool log) = 0;

  // ---- indexing ----
  // out[p, i, s] = table[p, indices[pb, i], s], where table is split as (prefix p, axis, suffix s) and the
  // first batch_dims of prefix p (pb) index indices too. out's shape is
  // table.shape[:axis] + indices.shape[batch_dims:] + table.shape[axis+1:]. Indices out of range throw.
  virtual void gather(const TensorView& table, const TensorView& indices, const TensorView& out, int axis,
                      int batch_dims) = 0;
  // The adjoint of gather: out[p, indices[pb, i], s] += updates[p, i, s]. out is not cleared first.
  virtual void scatter_add(const TensorView& updates, const TensorView& indices, const TensorView& out, int axis,
                           int batch_dims) = 0;

  // ---- convolution and pooling (NHWC input, HWIO kernel (kh, kw, in/groups, out)) ----
  virtual void conv2d(const TensorView& x, const TensorView& kernel, const TensorView& y, const Window2D& w) = 0;
  // dx = gradient of conv2d with respect to x (overwrites dx).
  virtual void conv2d_backward_data(const TensorView& dy, const TensorView& kernel, const TensorView& dx,
                                    const Window2D& w) = 0;
  // dkernel = gradient with respect to the kernel (overwrites dkernel).
  virtual void conv2d_backward_filter(const TensorView& x, const TensorView& dy, const TensorView& dkernel,
                                      const Window2D& w) = 0;
  // Max or average over each window; padded positions are ignored (average divides by the valid count).
  virtual void pool2d(PoolKind kind, const TensorView& x, const TensorView& y, const Window2D& w) = 0;
  // dx (overwritten) from dy; max pooling routes each gradient to the first maximum of its window.
  virtual void pool2d_backward(PoolKind kind, const TensorView& x, const TensorView& y, const TensorView& dy,
                               const TensorView& dx, const Window2D& w) = 0;

  // ---- recurrent cells ----
  // One fused step of a recurrent cell (see RnnCellOp); float32, rows of contiguous features.
  virtual void rnn_cell(RnnCellOp op, std::span<const TensorView> inputs, std::span<const TensorView> outputs) = 0;

  // ---- random numbers ----
  // Philox-4x32-10 keyed by seed; element i uses counter (offset, i / 4). The same (seed, offset) gives the
  // same numbers on every backend and thread count, so a run is repeatable bit for bit.
  virtual void random(RandomKind kind, const TensorView& out, std::uint64_t seed, std::uint64_t offset, float a,
                      float b) = 0;

  // ---- collectives (data-parallel training) ----
  // A backend that can sum across processes on its device returns, on the chief process, the bytes that
  // identify a new group; every process then passes them to join_collective with its rank. Empty (the
  // default): gradients travel through host memory instead.
  virtual std::vector<std::byte> collective_unique_id() { return {}; }
  virtual std::unique_ptr<DeviceCollective> join_collective(std::span<const std::byte> unique_id, int rank, int processes);

  // ---- optimizers ----
  // Applies one fused update to `param` from `grad`, reading and writing `slots` as documented above.
  virtual void optimizer_update(const OptimizerUpdate& update, const TensorView& param, const TensorView& grad,
                                std::span<const TensorView> slots) = 0;

 protected:
  void record_allocation(std::size_t bytes);
  void record_deallocation(std::size_t bytes);

 private:
  std::atomic<std::int64_t> allocations_{0}, live_bytes_{0}, peak_bytes_{0};
};

// The backend registered under `name` ("cpu", "cuda"), created on first use and alive for the process.
// Throws with the list of available names when there is none such.
Backend& get_backend(std::string_view name);
std::vector<std::string> available_backends();

using BackendFactory = std::unique_ptr<Backend> (*)();
// Backends register from their own translation unit; `unavailable_reason` returns why the device cannot be
// used here (empty when it can), so that asking for it fails with that reason.
void register_backend(std::string_view name, BackendFactory factory, std::string (*unavailable_reason)() = nullptr);

// Memory owned by a backend, released when the last owner lets go.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Backend* backend() const { return backend_; }

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace strata
