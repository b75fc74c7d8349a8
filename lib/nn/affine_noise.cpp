#include "nn/affine_noise.h"

#include <torch/torch.h>

#include <vector>

#include "nn/scale_channels.h"

namespace normexp::nn {

namespace {
// [N, C] or [C] viewed to broadcast over x's positions: [N, C, 1, ...] or [1, C, 1, ...].
torch::Tensor per_channel_view(const torch::Tensor& t, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  if (t.dim() == 2) shape[0] = x.size(0);
  return t.view(shape);
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Constants of one call, passed beside the differentiable inputs (an undefined tensor cannot be
// a custom function's input in LibTorch 1.13).
struct AffineNoiseConstants {
  torch::Tensor sample_factor;  // [N, C], or undefined: no per-sample noise
  torch::Tensor zero_mean, unit_var;
};

// Inputs x, gamma, bias. A per-channel factor is folded into gamma by the caller, whose autograd
// carries it to the weight.
class AffineNoiseFunction : public torch::autograd::Function<AffineNoiseFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& gamma, const torch::Tensor& bias,
                               const AffineNoiseConstants& k) {
    // x*f in x's dtype: what BatchNorm's kernels see, and what the backward reduces against.
    const auto input = k.sample_factor.defined() ? scale_channels(x, k.sample_factor) : x;
    ctx->save_for_backward({input, gamma});
    ctx->saved_data["zero_mean"] = k.zero_mean;
    ctx->saved_data["unit_var"] = k.unit_var;
    if (k.sample_factor.defined()) ctx->saved_data["sample_factor"] = k.sample_factor;
    // eps 0 also keeps cuDNN out (its minimum eps is 1e-5): LibTorch's native kernels.
    return torch::batch_norm(input, gamma, bias, k.zero_mean, k.unit_var, /*training=*/false,
                             /*momentum=*/0.0, /*eps=*/0.0, /*cudnn_enabled=*/false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto& gamma = saved[1];
    const auto& g = grads[0];
    torch::Tensor dx, dgamma, dbias;
    if (ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      // BatchNorm's reduction only (no dL/dinput from it): sum(g*(input - 0)*1), sum(g).
      const auto zero_mean = ctx->saved_data["zero_mean"].toTensor();
      const auto none = torch::empty({0}, zero_mean.options());  // eval: no saved statistics
      auto r = at::native_batch_norm_backward(
          g, input, gamma, zero_mean, ctx->saved_data["unit_var"].toTensor(), none, none,
          /*train=*/false, /*eps=*/0.0,
          {false, ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
      dgamma = std::get<1>(r);
      dbias = std::get<2>(r);
    }
    if (ctx->needs_input_grad(0)) {
      auto scale = gamma;  // [C], or [N, C] with per-sample noise
      const auto it = ctx->saved_data.find("sample_factor");
      if (it != ctx->saved_data.end()) scale = gamma.unsqueeze(0) * it->second.toTensor();
      dx = scale_channels(g, scale);
    }
    return {dx, dgamma, dbias, torch::Tensor()};  // and none for the constants
  }
};
}  // namespace

torch::Tensor affine_noise_fused(const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias, const torch::Tensor& factor,
                                 const torch::Tensor& zero_mean, const torch::Tensor& unit_var) {
  TORCH_CHECK(x.dim() >= 2 && weight.dim() == 1 && weight.size(0) == x.size(1),
              "affine_noise: weight must have x.size(1) entries");
  TORCH_CHECK(!factor.defined() || factor.dim() == 1 ||
                  (factor.dim() == 2 && factor.size(0) == x.size(0)),
              "affine_noise: factor must be [C] or [N, C], got ", factor.sizes());
  const bool per_channel = factor.defined() && factor.dim() == 1;
  // A per-channel factor is part of gamma (autograd carries dL/dgamma to weight).
  const auto gamma = per_channel ? weight * factor : weight;
  return AffineNoiseFunction::apply(
      x, gamma, bias,
      AffineNoiseConstants{per_channel ? torch::Tensor() : factor, zero_mean, unit_var});
}

namespace {
const torch::Tensor& constant_like(torch::Tensor& cache, const torch::Tensor& like, double value) {
  if (!cache.defined() || cache.device() != like.device() ||
      cache.scalar_type() != like.scalar_type() || cache.sizes() != like.sizes())
    cache = torch::full(like.sizes(), value, like.options().requires_grad(false));
  return cache;
}
}  // namespace

const torch::Tensor& AffineConstants::zeros(const torch::Tensor& like) {
  return constant_like(zeros_, like, 0.0);
}
const torch::Tensor& AffineConstants::ones(const torch::Tensor& like) {
  return constant_like(ones_, like, 1.0);
}

torch::Tensor affine_noise_op_chain(const torch::Tensor& x, const torch::Tensor& weight,
                                    const torch::Tensor& bias, const torch::Tensor& factor) {
  auto gamma = per_channel_view(weight, x);
  if (factor.defined()) gamma = gamma * per_channel_view(factor, x);
  // One fused multiply-add over the activations; autograd reduces dy*x and dy for gamma and
  // beta.
  return torch::addcmul(per_channel_view(bias, x).to(x.scalar_type()), x,
                        gamma.to(x.scalar_type()));
}

}  // namespace normexp::nn
