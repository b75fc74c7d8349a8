#pragma once
// What a data-parallel run does on top of the single-process trainer (train.world_size > 1,
// launched by torchrun or srun; backend/launch.h): every rank holds the whole model and
// trains on its part of each global batch (data::DeviceLoader::shard); gradients are summed
// over the ranks after the backward pass; metrics, the stop decision and checkpoints are
// agreed through the same process group. Only rank 0 writes files.
//
// Gradients: each rank backpropagates its mean loss weighted by its share of the global batch
// (n_rank / n_global) and the ranks' gradients are summed. That is exactly the gradient of
// the global batch's mean loss, also for an uneven last batch and through train.sync_bn's
// statistics, whose all-reduce backward adds the ranks' contributions.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include "backend/process_group.h"
#include "train/components.h"

namespace normexp::train {

class DataParallel {
 public:
  // `bucket_bytes`: gradients are flattened into buckets of about this size, one all-reduce
  // each (few large messages instead of one per tensor, as PyTorch's DDP with 25 MiB).
  DataParallel(std::shared_ptr<backend::ProcessGroup> group, c10::Device device,
               int64_t bucket_bytes = 25 << 20);

  backend::ProcessGroup& group() const { return *group_; }
  const std::shared_ptr<backend::ProcessGroup>& shared_group() const { return group_; }
  int rank() const { return group_->rank(); }
  int world() const { return group_->size(); }
  bool is_root() const { return group_->is_root(); }

  // Rank 0's parameters and buffers on every rank (every rank then starts from one model).
  void broadcast_model(torch::nn::Module& model) const;
  // Rank 0's tensor on every rank, in place (the epoch's data order).
  void broadcast(at::Tensor& tensor) const;
  // Sums every defined gradient of `params` over the ranks, in place, bucketed by dtype.
  void sum_gradients(const std::vector<at::Tensor>& params) const;
  // Sums over the ranks, in place.
  void sum(std::vector<at::Tensor>& tensors) const;
  // Each flag: whether it is true on any rank (one all-reduce for all of them).
  std::vector<bool> any(const std::vector<bool>& flags) const;
  // Every rank's `tensor`, stacked along a new first dimension, on the CPU.
  at::Tensor gather(const at::Tensor& tensor) const;
  void barrier() const { group_->barrier(); }

  // Wall time spent in sum_gradients so far (the all-reduce's share of training; it runs
  // after the backward pass, not overlapped with it).
  double gradient_sync_seconds() const { return sync_seconds_; }

 private:
  std::shared_ptr<backend::ProcessGroup> group_;
  c10::Device device_;
  int64_t bucket_bytes_;
  mutable double sync_seconds_ = 0;
  // Where collectives take their tensors: CUDA for NCCL, CPU for Gloo.
  at::Tensor on_group_device(const at::Tensor& t) const;
};

// train.sync_bn: the scheme's BatchNorm2d layers become nn::SyncBatchNorm2d over `group`.
SchemeDecorator sync_batch_norm(std::shared_ptr<backend::ProcessGroup> group);

}  // namespace normexp::train
