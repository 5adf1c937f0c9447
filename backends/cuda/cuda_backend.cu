// The CUDA backend: device_backend.h's kernels launched on one CUDA stream, GEMM through cuBLAS, memory
// from cudaMalloc behind the caching allocator.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#ifdef STRATA_HAVE_NCCL
#include <nccl.h>
#endif

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_backend.h"

namespace strata {

namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(fmt::format("CUDA error in {}: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status)));
}

// cuBLAS is loaded when the backend is first used, not linked: its libraries map hundreds of megabytes,
// which every program that trains on the CPU would otherwise carry (150 MB more peak RSS, measured).
struct Cublas {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  std::string error;  // why it could not be loaded; empty when it was
};

// Opens a CUDA library by its soname: the loader's search path first, then the toolkit this build was
// compiled against. Sets `error` and returns null when it cannot.
void* open_cuda_library(const std::string& name, std::string& error) {
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  for (const std::string dir : {std::string(STRATA_CUDA_LIBRARY_DIR), std::string("/usr/local/cuda/lib64")})
    if (!lib) lib = dlopen((dir + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) error = fmt::format("{} could not be loaded ({}); add the CUDA toolkit's library folder to LD_LIBRARY_PATH", name, dlerror());
  return lib;
}

// Fills `fn` with `symbol` from `lib`, or records in `error` that it is missing.
template <class Fn>
void load_symbol(void* lib, Fn& fn, const char* symbol, const std::string& library, std::string& error) {
  fn = reinterpret_cast<Fn>(dlsym(lib, symbol));
  if (!fn && error.empty()) error = fmt::format("{} has no {}", library, symbol);
}

const Cublas& cublas() {
  static const Cublas api = [] {
    Cublas c;
    const std::string name = fmt::format("libcublas.so.{}", CUBLAS_VER_MAJOR);
    void* lib = open_cuda_library(name, c.error);
    if (!lib) return c;
    auto load = [&](auto& fn, const char* symbol) { load_symbol(lib, fn, symbol, name, c.error); };
    load(c.create, "cublasCreate_v2");
    load(c.destroy, "cublasDestroy_v2");
    load(c.set_stream, "cublasSetStream_v2");
    load(c.set_math_mode, "cublasSetMathMode");
    load(c.sgemm, "cublasSgemm_v2");
    load(c.sgemm_strided_batched, "cublasSgemmStridedBatched");
    load(c.status_string, "cublasGetStatusString");
    return c;
  }();
  return api;
}

#ifdef STRATA_HAVE_NCCL
// NCCL too is opened on first use, by the first data-parallel fit on the GPU.
struct Nccl {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string error;
};

const Nccl& nccl() {
  static const Nccl api = [] {
    Nccl n;
    const std::string name = "libnccl.so.2";
    void* lib = open_cuda_library(name, n.error);
    if (!lib) return n;
    auto load = [&](auto& fn, const char* symbol) { load_symbol(lib, fn, symbol, name, n.error); };
    load(n.get_unique_id, "ncclGetUniqueId");
    load(n.comm_init_rank, "ncclCommInitRank");
    load(n.all_reduce, "ncclAllReduce");
    load(n.comm_destroy, "ncclCommDestroy");
    load(n.error_string, "ncclGetErrorString");
    return n;
  }();
  return api;
}

void check_nccl(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) throw std::runtime_error(fmt::format("NCCL error in {}: {}", what, nccl().error_string(status)));
}

// One process's member of an NCCL group. Sums run on a stream of their own, each after the kernels
// issued before it on the backend's stream, so that they overlap the rest of the backward pass; wait()
// puts the backend's stream behind them.
class NcclCollective final : public DeviceCollective {
 public:
  NcclCollective(ncclComm_t comm, cudaStream_t compute) : comm_(comm), compute_(compute) {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&issued_, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventCreateWithFlags(&summed_, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~NcclCollective() override {
    nccl().comm_destroy(comm_);
    cudaEventDestroy(issued_);
    cudaEventDestroy(summed_);
    cudaStreamDestroy(stream_);
  }
  void allreduce_sum(float* data, std::int64_t count) override {
    check_cuda(cudaEventRecord(issued_, compute_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, issued_, 0), "cudaStreamWaitEvent");
    check_nccl(nccl().all_reduce(data, data, std::size_t(count), ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce");
  }
  void wait() override {
    check_cuda(cudaEventRecord(summed_, stream_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(compute_, summed_, 0), "cudaStreamWaitEvent");
  }

 private:
  ncclComm_t comm_;
  cudaStream_t compute_, stream_ = nullptr;
  cudaEvent_t issued_ = nullptr, summed_ = nullptr;
};
#endif

// This process's GPU: processes started on one machine (mpirun, srun, torchrun) take one each, by their
// rank on the machine.
int local_device(int devices) {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) return std::max(std::atoi(v), 0) % std::max(devices, 1);
  return 0;
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(fmt::format("cuBLAS error in {}: {} (status {})", what, cublas().status_string(status), int(status)));
}

// Grid-stride loop: any n with a bounded grid.
template <class F>
__global__ void for_each_index(std::int64_t n, F f) {
  const std::int64_t step = std::int64_t(blockDim.x) * gridDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

class CudaDevice {
 public:
  CudaDevice() {
    int devices = 0;
    check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    device_ = local_device(devices);
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cublas(cublas().create(&blas_), "cublasCreate");
    check_cublas(cublas().set_stream(blas_, stream_), "cublasSetStream");
    // float32 products stay float32 (results match the CPU backend) unless TF32 is asked for.
    check_cublas(cublas().set_math_mode(blas_, cuda_tf32_enabled() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                 "cublasSetMathMode");
    int sms = 0;
    check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_), "cudaDeviceGetAttribute");
    max_blocks_ = std::int64_t(std::max(sms, 1)) * 32;
  }
  ~CudaDevice() {
    // At process exit the driver may already be shutting down; errors here are not actionable.
    if (blas_) cublas().destroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  template <class F>
  void launch(std::int64_t n, F f) {
    if (n <= 0) return;
    constexpr int kThreads = 256;
    const std::int64_t blocks = std::min<std::int64_t>((n + kThreads - 1) / kThreads, max_blocks_);
    for_each_index<<<unsigned(blocks), kThreads, 0, stream_>>>(n, f);
    check_cuda(cudaGetLastError(), "a kernel launch");
  }

  void* malloc(std::size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();  // clears the out-of-memory status, so that the next call does not report it
      return nullptr;
    }
    return p;
  }
  void free(void* p) { cudaFree(p); }

  void to_device(void* dst, const void* host, std::size_t bytes) {
    // From pageable memory the call returns once the bytes are staged, so the caller may reuse or free
    // its buffer at once; the copy itself is ordered on the stream with the kernels.
    check_cuda(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpy to the device");
  }
  void to_host(void* host, const void* src, std::size_t bytes) {
    check_cuda(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpy to the host");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }
  void device_copy(void* dst, const void* src, std::size_t bytes) {
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "cudaMemcpy on the device");
  }
  void synchronize() { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first, and the leading
  // dimensions stay as they are.
  void gemm(const GemmArgs& g) {
    const cublasOperation_t op_a = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (g.batch == 1) {
      check_cublas(cublas().sgemm(blas_, op_b, op_a, int(g.n), int(g.m), int(g.k), &g.alpha, g.b, int(g.ldb), g.a, int(g.lda),
                               &g.beta, g.c, int(g.ldc)),
                   "cublasSgemm");
    } else {
      check_cublas(cublas().sgemm_strided_batched(blas_, op_b, op_a, int(g.n), int(g.m), int(g.k), &g.alpha, g.b, int(g.ldb),
                                             g.stride_b, g.a, int(g.lda), g.stride_a, &g.beta, g.c, int(g.ldc), g.stride_c,
                                             int(g.batch)),
                   "cublasSgemmStridedBatched");
    }
  }

  // Data-parallel training sums gradients with NCCL where it can be loaded; without it, through the host.
  std::vector<std::byte> collective_unique_id() {
#ifdef STRATA_HAVE_NCCL
    if (!nccl().error.empty()) return {};
    ncclUniqueId id;
    check_nccl(nccl().get_unique_id(&id), "ncclGetUniqueId");
    std::vector<std::byte> bytes(sizeof(id));
    std::memcpy(bytes.data(), &id, sizeof(id));
    return bytes;
#else
    return {};
#endif
  }

  std::unique_ptr<DeviceCollective> join_collective(std::span<const std::byte> unique_id, int rank, int processes) {
#ifdef STRATA_HAVE_NCCL
    if (!nccl().error.empty()) throw std::runtime_error(nccl().error);
    ncclUniqueId id;
    if (unique_id.size() != sizeof(id))
      throw std::invalid_argument(fmt::format("the NCCL group id received has {} bytes instead of {}", unique_id.size(), sizeof(id)));
    std::memcpy(&id, unique_id.data(), sizeof(id));
    ncclComm_t comm = nullptr;
    check_nccl(nccl().comm_init_rank(&comm, processes, id, rank), "ncclCommInitRank");
    return std::make_unique<NcclCollective>(comm, stream_);
#else
    (void)unique_id, (void)rank, (void)processes;
    throw std::logic_error("this build's CUDA backend has no NCCL (nccl.h was not found)");
#endif
  }

  std::optional<MemoryBudget> memory_available() const {
    std::size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
      cudaGetLastError();
      return std::nullopt;
    }
    return MemoryBudget{free_bytes, fmt::format("cudaMemGetInfo: {} of {} free", format_bytes(free_bytes), format_bytes(total))};
  }

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::int64_t max_blocks_ = 1024;
};

std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("no usable CUDA device ({}: {})", cudaGetErrorName(status), cudaGetErrorString(status));
  }
  if (count == 0) return "no CUDA device found";
  return cublas().error;
}

}  // namespace

std::string cublas_load_error() { return cublas().error; }

std::string nccl_load_error() {
#ifdef STRATA_HAVE_NCCL
  return nccl().error;
#else
  return "this build's CUDA backend has no NCCL (nccl.h was not found)";
#endif
}

bool cuda_tf32_enabled() {
  const char* v = std::getenv("STRATA_CUDA_TF32");
  return v && std::string(v) == "1";
}

std::string cuda_device_description() {
  if (!cuda_unavailable_reason().empty()) return {};
  cudaDeviceProp prop{};
  int devices = 0;
  cudaGetDeviceCount(&devices);
  if (cudaGetDeviceProperties(&prop, local_device(devices)) != cudaSuccess) return {};
  return fmt::format("{} (compute capability {}.{}, {})", prop.name, prop.major, prop.minor, format_bytes(prop.totalGlobalMem));
}

void register_cuda_backend() {
  register_backend(
      "cuda", [] { return std::unique_ptr<Backend>(new device::DeviceBackend<CudaDevice>("cuda")); },
      [] {
        static const std::string reason = cuda_unavailable_reason();
        return reason;
      });
}

}  // namespace strata
