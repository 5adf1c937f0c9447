// The Eigen CPU backend: every primitive of Backend, multi-threaded through the one OpenMP thread pool.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/backend.h"

namespace strata::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  ~CpuBackend() override;
  std::string_view name() const override { return "cpu"; }

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) override;
  void copy_to_device(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;

  void fill(const TensorView& out, Scalar value) override;
  void cast(const TensorView& in, const TensorView& out) override;
  void copy_strided(const StridedView& src, const StridedView& dst, bool accumulate) override;
  void unary(UnaryOp op, const TensorView& x, const TensorView& y, float alpha) override;
  void unary_backward(UnaryOp op, const TensorView& x, const TensorView& y, const TensorView& dy,
                      const TensorView& dx, float alpha) override;
  void binary(BinaryOp op, const TensorView& a, const TensorView& b, const TensorView& out) override;
  void gemm(const GemmArgs& args) override;
  void reduce(ReduceOp op, const TensorView& in, const TensorView& out) override;
  void argmax(const TensorView& in, const TensorView& out, int axis) override;
  void softmax(const TensorView& x, const TensorView& y, int axis, bool log) override;
  void softmax_backward(const TensorView& y, const TensorView& dy, const TensorView& dx, int axis,
                        bool log) override;
  void gather(const TensorView& table, const TensorView& indices, const TensorView& out, int axis,
              int batch_dims) override;
  void scatter_add(const TensorView& updates, const TensorView& indices, const TensorView& out, int axis,
                   int batch_dims) override;
  void conv2d(const TensorView& x, const TensorView& kernel, const TensorView& y, const Window2D& w) override;
  void conv2d_backward_data(const TensorView& dy, const TensorView& kernel, const TensorView& dx,
                            const Window2D& w) override;
  void conv2d_backward_filter(const TensorView& x, const TensorView& dy, const TensorView& dkernel,
                              const Window2D& w) override;
  void pool2d(PoolKind kind, const TensorView& x, const TensorView& y, const Window2D& w) override;
  void rnn_cell(RnnCellOp op, std::span<const TensorView> inputs, std::span<const TensorView> outputs) override;
  void pool2d_backward(PoolKind kind, const TensorView& x, const TensorView& y, const TensorView& dy,
                       const TensorView& dx, const Window2D& w) override;
  void random(RandomKind kind, const TensorView& out, std::uint64_t seed, std::uint64_t offset, float a,
              float b) override;
  void optimizer_update(const OptimizerUpdate& update, const TensorView& param, const TensorView& grad,
                        std::span<const TensorView> slots) override;

 private:
  void whole_variable_update(const OptimizerUpdate& update, const TensorView& param, const TensorView& grad,
                             std::span<const TensorView> slots, std::size_t needed);
  // Scratch for im2col; grows to the largest request and is then reused, so steady state allocates nothing.
  float* scratch(std::size_t floats);
  float* scratch_ = nullptr;
  std::size_t scratch_floats_ = 0;
};

// Number of threads in the pool (all cores unless STRATA_NUM_THREADS or OMP_NUM_THREADS says otherwise).
int num_threads();

// Runs f(begin, end) over [0, n) split across the pool; small jobs stay on the calling thread so that
// tiny tensors pay no synchronisation. `work_per_item` is a rough count of cheap operations per item.
template <class F>
void parallel_for(std::int64_t n, std::int64_t work_per_item, F&& f);

}  // namespace strata::cpu

#include "backends/cpu/parallel.h"
