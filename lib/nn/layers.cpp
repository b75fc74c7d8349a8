#include "nn/layers.h"

#include <torch/torch.h>

#include <cmath>

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

ConstrainedConv2dImpl::ConstrainedConv2dImpl(torch::nn::Conv2dOptions options, ConstraintSpec spec)
    : torch::nn::Conv2dImpl(std::move(options)), spec_(spec) {
  project_rows_(weight, spec_);
}

ConstrainedLinearImpl::ConstrainedLinearImpl(torch::nn::LinearOptions options, ConstraintSpec spec)
    : torch::nn::LinearImpl(std::move(options)), spec_(spec) {
  project_rows_(weight, spec_);
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

AffineNoiseImpl::AffineNoiseImpl(int64_t channels, bool per_batch)
    : channels_(channels), per_batch_(per_batch) {
  reset();
}

void AffineNoiseImpl::reset() {
  weight = register_parameter("weight", torch::ones({channels_}));
  bias = register_parameter("bias", torch::zeros({channels_}));
}

torch::Tensor AffineNoiseImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == channels_, "AffineNoise: expected ", channels_,
              " channels in dim 1, got input of shape ", x.sizes());
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = channels_;
  auto gamma = weight.view(shape);
  auto beta = bias.view(shape);
  if (is_training() && sigma_ > 0.0) {
    std::vector<int64_t> noise_shape = shape;
    if (!per_batch_) noise_shape[0] = x.size(0);
    auto n = torch::randn(noise_shape, gamma.options());
    // (1 + sigma*z) * gamma, then one fused multiply-add over the activations.
    gamma = gamma * n.mul_(sigma_).add_(1.0);
  }
  return torch::addcmul(beta.to(x.scalar_type()), x, gamma.to(x.scalar_type()));
}

}  // namespace normexp::nn
