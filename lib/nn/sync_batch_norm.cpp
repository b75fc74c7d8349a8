#include "nn/sync_batch_norm.h"

#include <torch/torch.h>

namespace normexp::nn {

namespace {

struct AllReduceSum : torch::autograd::Function<AllReduceSum> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               backend::ProcessGroup* group) {
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    std::vector<torch::Tensor> t{x.clone()};
    group->allreduce_sum(t);
    return t[0];
  }
  // d(Σ_r x_r)/dx_q = I for every q: rank q's input gradient is the sum of every rank's
  // output gradient.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto* group = reinterpret_cast<backend::ProcessGroup*>(ctx->saved_data["group"].toInt());
    std::vector<torch::Tensor> t{grad[0].contiguous().clone()};
    group->allreduce_sum(t);
    return {t[0], torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_reduce_sum(const torch::Tensor& x, backend::ProcessGroup& group) {
  return AllReduceSum::apply(x, &group);
}

GlobalChannelMoments global_channel_moments(const torch::Tensor& x, backend::ProcessGroup& group) {
  const int64_t channels = x.size(1);
  std::vector<int64_t> dims, shape(x.dim(), 1);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != 1) dims.push_back(d);
  shape[1] = channels;
  GlobalChannelMoments m;
  const auto local_n = torch::full({1}, static_cast<double>(x.numel() / channels), x.options());
  const auto sum_n = all_reduce_sum(torch::cat({x.sum(dims), local_n}), group);
  m.n = sum_n[channels].detach();
  m.mean = sum_n.slice(0, 0, channels) / m.n;
  m.centred = x - m.mean.view(shape);
  m.var = all_reduce_sum(m.centred.pow(2).sum(dims), group) / m.n;
  return m;
}

SyncBatchNorm2dImpl::SyncBatchNorm2dImpl(torch::nn::BatchNormOptions options_,
                                         std::shared_ptr<backend::ProcessGroup> group)
    : options(std::move(options_)), group_(std::move(group)) {
  reset();
}

void SyncBatchNorm2dImpl::reset() {
  const int64_t c = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  }
}

void SyncBatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "normexp::SyncBatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", ranks=" << (group_ ? group_->size() : 1) << ")";
}

torch::Tensor SyncBatchNorm2dImpl::forward(const torch::Tensor& x) {
  // BatchNorm's momentum; none: the cumulative average over the batches seen.
  double momentum = options.momentum().value_or(0.0);
  if (is_training() && options.track_running_stats()) {
    num_batches_tracked.add_(1);
    if (!options.momentum().has_value())
      momentum = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  if (!is_training() || !group_ || group_->size() == 1) {
    // One device's batch norm (eval: the running statistics).
    const bool use_batch = is_training() || !options.track_running_stats();
    return torch::batch_norm(x, weight, bias, running_mean, running_var, use_batch, momentum,
                             options.eps(), /*cudnn_enabled=*/true);
  }
  TORCH_CHECK(x.dim() == 4, "SyncBatchNorm2d: expected a 4-d input, got ", x.dim(), "-d");
  // Statistics in float32 under bf16 autocast, as BN's.
  const auto [mean, var, n, centred] = global_channel_moments(x.to(torch::kFloat), *group_);
  auto y = centred * torch::rsqrt(var + options.eps()).view({1, -1, 1, 1});
  if (options.affine()) y = y * weight.view({1, -1, 1, 1}) + bias.view({1, -1, 1, 1});
  if (options.track_running_stats()) {
    torch::NoGradGuard no_grad;
    running_mean.mul_(1 - momentum).add_(mean.detach(), momentum);
    // Unbiased, as BatchNorm's running variance (no host read of n: a tensor expression).
    running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1).clamp_min(1)), momentum);
  }
  return y.to(x.scalar_type());
}

}  // namespace normexp::nn
