#pragma once
// The collectives a data-parallel run needs, over PyTorch's own distributed engine (c10d):
// ProcessGroupNCCL for CUDA tensors, ProcessGroupGloo for CPU tensors, both meeting through a
// TCPStore at the launcher's master address. No MPI, no sockets of ours.
//
// Every collective blocks until it is done on this rank. A peer that died, or one that has
// not arrived within the timeout, makes it throw DistributedError naming the operation and
// this rank: a run fails with a message instead of hanging.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "backend/launch.h"
#include "core/error.h"

namespace normexp::backend {

class DistributedError : public RunError {
 public:
  using RunError::RunError;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // "gloo" or "nccl".
  const std::string& backend() const { return backend_; }

  // Sums every rank's tensors into each rank's, in place (same shapes on every rank).
  virtual void allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  // Overwrites every rank's tensors with rank `root`'s.
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root = 0) = 0;
  // Every rank's `tensor` (same shape on every rank), in rank order.
  virtual std::vector<at::Tensor> allgather(const at::Tensor& tensor) = 0;
  virtual void barrier() = 0;

 protected:
  ProcessGroup(int rank, int size, std::string backend)
      : rank_(rank), size_(size), backend_(std::move(backend)) {}

 private:
  int rank_, size_;
  std::string backend_;
};

// Meets the other ranks of `launch` and returns the group for tensors on `device`: NCCL for
// CUDA when this LibTorch has it (else Gloo, which also moves CUDA tensors), Gloo for the CPU.
// DistributedError when the rendezvous times out or this build has no backend for `device`.
std::unique_ptr<ProcessGroup> connect(const Launch& launch, const c10::Device& device,
                                      std::chrono::seconds timeout);

// Which c10d backends this build has ("gloo", "nccl"), for --version and error messages.
std::vector<std::string> distributed_backends();

}  // namespace normexp::backend
