#include "api/distribution.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <vector>

#if STRATA_HAVE_MPI
// The C interface only: MPI's deprecated C++ bindings would need their own library.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace strata::distribution {

namespace {

std::mutex g_mutex;
std::shared_ptr<DataParallel> g_distribution;

}  // namespace

#if STRATA_HAVE_MPI

struct DataParallel::Requests {
  std::vector<MPI_Request> pending;
};

DataParallel::DataParallel() : requests_(std::make_unique<Requests>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    // MPI starts once per process, so it ends at exit rather than with this object (another may follow).
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

DataParallel::~DataParallel() { wait_all(); }

void DataParallel::broadcast(void* data, std::size_t bytes, int root) const {
  for (std::size_t done = 0; done < bytes;) {  // MPI counts are ints
    const int chunk = int(std::min<std::size_t>(bytes - done, INT_MAX));
    MPI_Bcast(static_cast<char*>(data) + done, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
    done += std::size_t(chunk);
  }
}

void DataParallel::allreduce_sum(double* data, std::size_t count) const {
  if (size_ > 1 && count) MPI_Allreduce(MPI_IN_PLACE, data, int(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void DataParallel::start_allreduce_sum(float* data, std::size_t count) {
  if (size_ == 1 || count == 0) return;
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, data, int(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
  requests_->pending.push_back(r);
}

void DataParallel::progress() {
  if (requests_->pending.empty()) return;
  int done = 0;
  MPI_Testall(int(requests_->pending.size()), requests_->pending.data(), &done, MPI_STATUSES_IGNORE);
  if (done) requests_->pending.clear();
}

void DataParallel::wait_all() {
  if (requests_->pending.empty()) return;
  MPI_Waitall(int(requests_->pending.size()), requests_->pending.data(), MPI_STATUSES_IGNORE);
  requests_->pending.clear();
}

#else

struct DataParallel::Requests {};

DataParallel::DataParallel() : requests_(std::make_unique<Requests>()) {
  if (launched_processes() > 1)
    throw std::runtime_error(fmt::format("DataParallel: started as one of {} processes, but this Strata was built without MPI "
                                         "(install libopenmpi-dev and rebuild)", launched_processes()));
}
DataParallel::~DataParallel() = default;
void DataParallel::broadcast(void*, std::size_t, int) const {}
void DataParallel::allreduce_sum(double*, std::size_t) const {}
void DataParallel::start_allreduce_sum(float*, std::size_t) {}
void DataParallel::progress() {}
void DataParallel::wait_all() {}

#endif

int launched_processes() {
  // Open MPI, MPICH and their relatives say so in the environment.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  return 1;
}

void set_distribution(std::shared_ptr<DataParallel> distribution) {
  std::lock_guard lock(g_mutex);
  g_distribution = std::move(distribution);
}

std::shared_ptr<DataParallel> distribution() {
  std::lock_guard lock(g_mutex);
  return g_distribution;
}

}  // namespace strata::distribution
