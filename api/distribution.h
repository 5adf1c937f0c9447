// Data-parallel training across processes, as keras.distribution.DataParallel: every process holds the
// whole model and takes its shard of each global batch; gradients are averaged across processes before
// every update, so all processes keep identical weights. The processes are MPI's (`mpirun -np N prog`):
// a Strata built with MPI (Debian's OpenMPI) joins them; without mpirun there is one process.
//
//   strata::distribution::set_distribution(std::make_shared<strata::distribution::DataParallel>());
//   model.fit(x, y, {.batch_size = 128});   // 128 rows per step in all, 128 / N in each process
#pragma once

#include <cstddef>
#include <memory>

namespace strata::distribution {

class DataParallel {
 public:
  // Joins the processes mpirun started (initialising MPI unless the program has, and finalising it at
  // exit). Throws when started by mpirun with several processes in a build without MPI.
  DataParallel();
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int num_processes() const { return size_; }
  bool is_chief() const { return rank_ == 0; }  // the process that prints and writes files

  // Collectives: every process calls them in the same order with the same sizes.
  void broadcast(void* data, std::size_t bytes, int root = 0) const;
  void allreduce_sum(double* data, std::size_t count) const;  // in place
  // Nonblocking in-place sum of floats; wait_all() completes every one started. progress() lets MPI
  // move them along while the caller computes.
  void start_allreduce_sum(float* data, std::size_t count);
  void progress();
  void wait_all();

 private:
  struct Requests;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<Requests> requests_;
};

// How many processes mpirun says it started (1 without mpirun): whether to create a DataParallel.
int launched_processes();

// The distribution fit() uses (keras.distribution.set_distribution); null: one process.
void set_distribution(std::shared_ptr<DataParallel> distribution);
std::shared_ptr<DataParallel> distribution();

}  // namespace strata::distribution
