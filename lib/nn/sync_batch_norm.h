#pragma once
// Batch normalization with the batch statistics of every rank of a data-parallel run
// (train.sync_bn): the per-channel mean and variance are those of the global batch, as if
// one device had seen it, so a run on W ranks with B/W images each normalizes like one run
// with B images. Parameters and buffers are BatchNorm2d's, under the same names, so
// checkpoints move freely between synced and per-device BN; in eval mode, or without a
// group of more than one rank, it is BatchNorm2d.
//
// Two all-reduces per layer and forward (the sum and count, then the sum of squared
// deviations from the global mean: the two-pass variance of one device, not E[x²] − E[x]²,
// which cancels badly in float32). Both are differentiable: their backward is again an
// all-reduce, so the gradient reaching each rank's input is that of the global loss (the
// trainer weights each rank's loss by its share of the global batch and sums gradients).

#include <memory>

#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/nn/pimpl.h>

#include "backend/process_group.h"
#include "nn/layers.h"

namespace normexp::nn {

// Sum over ranks with an all-reduce backward; with autograd (used by SyncBatchNorm2d).
torch::Tensor all_reduce_sum(const torch::Tensor& x, backend::ProcessGroup& group);

// Per-channel (dim 1) statistics of x over every other dim and over every rank of `group`,
// as one device would compute them on the global batch: two all-reduces (the sum and count,
// then the squared deviations from the global mean), differentiable. `centred` is x minus
// the mean, kept because a normalization needs it next.
struct GlobalChannelMoments {
  torch::Tensor mean, var;  // (C): var biased
  torch::Tensor n;          // 0-dim: values per channel over all ranks
  torch::Tensor centred;    // x's shape
};
GlobalChannelMoments global_channel_moments(const torch::Tensor& x, backend::ProcessGroup& group);

// Its own module rather than a subclass of LibTorch's BatchNorm2dImpl, whose base class leaves
// a virtual function undefined in Debian's LibTorch 1.13 (a subclass does not link).
class SyncBatchNorm2dImpl : public torch::nn::Cloneable<SyncBatchNorm2dImpl>, public NormLayer {
 public:
  SyncBatchNorm2dImpl(torch::nn::BatchNormOptions options,
                      std::shared_ptr<backend::ProcessGroup> group);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  std::shared_ptr<backend::ProcessGroup> group_;
};
TORCH_MODULE(SyncBatchNorm2d);

}  // namespace normexp::nn
