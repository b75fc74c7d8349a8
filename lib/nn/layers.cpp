#include "nn/layers.h"

#include <torch/torch.h>

#include <cmath>

#include "backend/process_group.h"
#include "nn/affine_noise.h"
#include "nn/sync_batch_norm.h"

namespace normexp::nn {

namespace {
std::vector<int64_t> row_dims(const torch::Tensor& t) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return dims;
}
}  // namespace

void center_rows_(const torch::Tensor& t) {
  torch::NoGradGuard no_grad;
  if (t.dim() < 2) return;
  t.sub_(t.mean(row_dims(t), /*keepdim=*/true));
}

void remove_radial_rows_(const torch::Tensor& g, const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  if (g.dim() < 2) return;
  const auto dims = row_dims(w);
  auto along = (g * w).sum(dims, /*keepdim=*/true) / w.pow(2).sum(dims, true).clamp_min(1e-30);
  g.sub_(w * along);
}

void project_rows_(const torch::Tensor& weight, const ConstraintSpec& spec) {
  torch::NoGradGuard no_grad;
  if (weight.dim() < 2) return;
  const auto dims = row_dims(weight);
  if (spec.center) weight.sub_(weight.mean(dims, /*keepdim=*/true));
  if (spec.sphere) {
    // Sum of squares in float32 at least, so bf16/half weights still land on the sphere.
    const auto acc = weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    auto norm = weight.to(acc).pow(2).sum(dims, /*keepdim=*/true).sqrt_();
    weight.mul_((std::sqrt(spec.c) / norm.clamp_min_(1e-12)).to(weight.scalar_type()));
  }
}

void initialize_rows_(const torch::Tensor& weight, ConstraintSpec spec) {
  spec.sphere = true;
  project_rows_(weight, spec);
}

ConstrainedConv2dImpl::ConstrainedConv2dImpl(torch::nn::Conv2dOptions options, ConstraintSpec spec)
    : torch::nn::Conv2dImpl(std::move(options)), spec_(spec) {
  initialize_rows_(weight, spec_);
}

ConstrainedLinearImpl::ConstrainedLinearImpl(torch::nn::LinearOptions options, ConstraintSpec spec)
    : torch::nn::LinearImpl(std::move(options)), spec_(spec) {
  initialize_rows_(weight, spec_);
}

WSConv2dImpl::WSConv2dImpl(torch::nn::Conv2dOptions options, double eps)
    : torch::nn::Conv2dImpl(std::move(options)), eps_(eps) {}

torch::Tensor WSConv2dImpl::standardized_weight() const {
  const auto dims = row_dims(weight);
  auto centered = weight - weight.mean(dims, /*keepdim=*/true);
  auto var = centered.pow(2).mean(dims, /*keepdim=*/true);  // biased, as in the paper
  return centered * (var + eps_).rsqrt();
}

torch::Tensor WSConv2dImpl::forward(const torch::Tensor& input) {
  return _conv_forward(input, standardized_weight());
}

AffineNoiseImpl::AffineNoiseImpl(int64_t channels, bool per_batch, AffineInit init, double scale,
                                 bool fused)
    : channels_(channels), per_batch_(per_batch), init_(init), scale_(scale), fused_(fused) {
  reset();
}

void AffineNoiseImpl::reset() {
  weight = register_parameter("weight", torch::full({channels_}, scale_));
  bias = register_parameter("bias", torch::zeros({channels_}));
  if (init_ == AffineInit::Data) {
    initialized_ = register_buffer("initialized", torch::zeros({}));
    pending_ = true;
  }
}

void AffineNoiseImpl::init_from(const torch::Tensor& x) {
  pending_ = false;
  // Once per layer and process: a run restored from a checkpoint has done it already.
  if (initialized_.item<double>() != 0.0) return;
  torch::NoGradGuard no_grad;
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != 1) dims.push_back(d);
  const auto xf = x.detach().to(torch::kFloat);
  // BN's statistics (biased variance, its eps) over the batch and the positions; in a
  // data-parallel run over every rank's batch, two-pass as SyncBatchNorm2d.
  torch::Tensor mean, var;
  if (group_ && group_->size() > 1) {
    const auto global = global_channel_moments(xf, *group_);
    mean = global.mean;
    var = global.var;
  } else {
    mean = xf.mean(dims);
    var = xf.var(dims, /*unbiased=*/false);
  }
  const auto inv_std = (var + 1e-5).rsqrt();
  weight.copy_(inv_std * scale_);
  bias.copy_(-mean * inv_std * scale_);
  initialized_.fill_(1);
}

torch::Tensor AffineNoiseImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == channels_, "AffineNoise: expected ", channels_,
              " channels in dim 1, got input of shape ", x.sizes());
  // From the first *training* batch (Salimans & Kingma 2016), not from whatever is
  // evaluated first.
  if (pending_ && is_training()) init_from(x);
  torch::Tensor factor;  // 1 + sigma*z (Eq. 7)
  if (is_training() && sigma_ > 0.0) {
    const auto options = weight.options().requires_grad(false);
    factor = per_batch_ ? torch::randn({channels_}, options)
                        : torch::randn({x.size(0), channels_}, options);
    factor.mul_(sigma_).add_(1.0);
  }
  if (!fused_) return affine_noise_op_chain(x, weight, bias, factor);
  return affine_noise_fused(x, weight, bias, factor, constants_.zeros(weight),
                            constants_.ones(weight));
}

ChannelScaleImpl::ChannelScaleImpl(int64_t channels, double init, bool fused)
    : channels_(channels), init_(init), fused_(fused) {
  reset();
}

void ChannelScaleImpl::reset() {
  weight = register_parameter("weight", torch::full({channels_}, init_));
}

torch::Tensor ChannelScaleImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == channels_, "ChannelScale: expected ", channels_,
              " channels in dim 1, got input of shape ", x.sizes());
  if (fused_) {
    const auto& zeros = constants_.zeros(weight);  // no bias; and BatchNorm's mean
    return affine_noise_fused(x, weight, zeros, torch::Tensor(), zeros, constants_.ones(weight));
  }
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = channels_;
  return x * weight.view(shape).to(x.scalar_type());
}

void set_data_init_group(torch::nn::Module& model,
                         const std::shared_ptr<backend::ProcessGroup>& group) {
  for (const auto& m : model.modules(/*include_self=*/true))
    if (auto* affine = dynamic_cast<AffineNoiseImpl*>(m.get())) affine->set_init_group(group);
}

}  // namespace normexp::nn
