#include "nn/bcn.h"

#include "nn/bcn_function.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace normexp::nn {

BcnStats parse_bcn_stats(const std::string& s) {
  if (s == "tokens") return BcnStats::Tokens;
  if (s == "batch") return BcnStats::Batch;
  if (s == "literal") return BcnStats::Literal;
  if (s == "none") return BcnStats::None;
  throw std::invalid_argument("unknown BCN stats '" + s + "' (tokens, batch, literal, none)");
}

BcnBound parse_bcn_bound(const std::string& s) {
  if (s == "tanh") return BcnBound::Tanh;
  if (s == "clip") return BcnBound::Clip;
  throw std::invalid_argument("unknown BCN bound '" + s + "' (tanh, clip)");
}

BcnVector parse_bcn_vector(const std::string& s) {
  if (s == "position") return BcnVector::Position;
  if (s == "sample") return BcnVector::Sample;
  throw std::invalid_argument("unknown BCN vector '" + s + "' (position, sample)");
}

torch::Tensor bcn_scale(const torch::Tensor& m_tilde, double alpha, BcnBound bound) {
  auto b = bound == BcnBound::Tanh ? torch::tanh(m_tilde) : torch::clamp(m_tilde, -1.0, 1.0);
  return (1.0 - alpha) + alpha * (b + 1.0) * 0.5;
}

BcnImpl::BcnImpl(BcnOptions options) : options_(options) {
  if (!(options_.alpha > 0.0 && options_.alpha < 1.0))
    throw std::invalid_argument("BCN alpha must be in (0, 1), got " +
                                std::to_string(options_.alpha));
  if (options_.features < 1) throw std::invalid_argument("BCN needs features >= 1");
  if (options_.vector == BcnVector::Sample &&
      (options_.layout != BcnLayout::Channels || options_.stats == BcnStats::Tokens))
    throw std::invalid_argument(
        "BCN vector: sample is for (N, C, ...) maps and needs statistics over the batch "
        "(stats: batch, none or literal): one magnitude per sample has no spread");
  reset();
}

void BcnImpl::reset() {
  mag_weight = register_parameter("mag_weight", torch::ones({1}),
                                  options_.stats != BcnStats::None);
  mag_bias = register_parameter("mag_bias", torch::zeros({1}), options_.stats != BcnStats::None);
  if (options_.affine) {
    weight = register_parameter("weight", torch::ones({options_.features}));
    bias = register_parameter("bias", torch::zeros({options_.features}));
  }
  if (options_.stats == BcnStats::Batch) {
    running_mean = register_buffer("running_mean", torch::zeros({1}));
    running_var = register_buffer("running_var", torch::ones({1}));
  }
}

namespace {
// The axes of a magnitude tensor (feature axis already reduced to size 1) that one group of
// statistics spans.
std::vector<int64_t> group_dims(int64_t ndim, int64_t feature_dim, bool with_batch) {
  std::vector<int64_t> dims;
  for (int64_t d = with_batch ? 0 : 1; d < ndim; ++d)
    if (d != feature_dim) dims.push_back(d);
  return dims;
}
}  // namespace

BcnImpl::Vectors BcnImpl::vectors(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() >= 2, "BCN expects (N, ..., features) or (N, C, ...) inputs, got ",
              x.sizes());
  const int64_t fdim = options_.layout == BcnLayout::Channels ? 1 : x.dim() - 1;
  TORCH_CHECK(x.size(fdim) == options_.features, "BCN built for ", options_.features,
              " features, input has ", x.size(fdim), " on dim ", fdim);
  if (options_.vector == BcnVector::Position || x.size(0) == 0)
    return {x, options_.layout, options_.features};
  const int64_t n = x.size(0);
  return {x.reshape({n, 1, -1}), BcnLayout::Tokens, x.numel() / n};
}

torch::Tensor BcnImpl::core_reference(const torch::Tensor& input) {
  return band_reference(vectors(input)).reshape(input.sizes());
}

torch::Tensor BcnImpl::band_reference(const Vectors& v) {
  const auto in_dtype = v.x.scalar_type();
  // Statistics and scale in float32 (bf16 autocast may hand us bf16); double stays double.
  const torch::Tensor x = in_dtype == torch::kDouble ? v.x : v.x.to(torch::kFloat);
  const int64_t ndim = x.dim();
  const int64_t fdim = v.layout == BcnLayout::Channels ? 1 : ndim - 1;

  // ||x|| = a * ||x / a|| with a = max|x_i| treated as a constant (exact, see the header).
  const auto a = x.detach().abs().amax({fdim}, /*keepdim=*/true);
  const auto nonzero = a > 0;
  const auto a_safe = torch::where(nonzero, a, torch::ones_like(a));
  const auto xs = x / a_safe;
  const auto n = xs.norm(2, {fdim}, /*keepdim=*/true);
  const auto n_safe = torch::where(nonzero, n, torch::ones_like(n));
  const double uniform = 1.0 / std::sqrt(static_cast<double>(v.features));
  const auto dir = torch::where(nonzero, xs / n_safe, torch::full_like(xs, uniform));
  const auto m = a_safe * n * nonzero.to(n.scalar_type());  // ||x||, exactly 0 for x = 0

  torch::Tensor m_tilde;
  switch (options_.stats) {
    case BcnStats::None: m_tilde = m; break;
    case BcnStats::Literal: {
      // nn.LayerNorm(1) on each magnitude: its mean is itself, its variance 0.
      const auto mu = m.mean({fdim}, true);
      const auto var = (m - mu).pow(2).mean({fdim}, true);
      m_tilde = (m - mu) / torch::sqrt(var + options_.eps) * mag_weight + mag_bias;
      break;
    }
    case BcnStats::Tokens:
    case BcnStats::Batch: {
      const bool batch = options_.stats == BcnStats::Batch;
      const auto dims = group_dims(ndim, fdim, batch);
      torch::Tensor mu, var;
      if (dims.empty()) {  // (N, D) input with per-sample groups: one magnitude per group
        mu = m;
        var = torch::zeros_like(m);
      } else if (batch && !is_training()) {
        mu = running_mean.to(m.scalar_type());
        var = running_var.to(m.scalar_type());
      } else {
        mu = m.mean(dims, /*keepdim=*/true);
        var = (m - mu).pow(2).mean(dims, /*keepdim=*/true);
        if (batch) update_running_stats(mu.detach(), var.detach(), m.numel());
      }
      m_tilde = (m - mu) / torch::sqrt(var + options_.eps) * mag_weight + mag_bias;
      break;
    }
  }
  const auto s = bcn_scale(m_tilde, options_.alpha, options_.bound);
  last_scale_ = s.detach();
  return dir * s;
}

torch::Tensor BcnImpl::forward_reference(const torch::Tensor& x) {
  const auto v = vectors(x);
  auto y = band_reference(v).reshape(x.sizes());
  if (options_.scale_by_sqrt_dim) y = y * std::sqrt(static_cast<double>(v.features));
  if (options_.affine) y = apply_affine(y);
  return x.scalar_type() == torch::kDouble ? y : y.to(x.scalar_type());
}

torch::Tensor BcnImpl::apply_affine(const torch::Tensor& y) const {
  std::vector<int64_t> shape(y.dim(), 1);  // per feature: dim 1 of maps, the last of tokens
  shape[options_.layout == BcnLayout::Channels ? 1 : y.dim() - 1] = options_.features;
  return y * weight.view(shape).to(y.scalar_type()) + bias.view(shape).to(y.scalar_type());
}

void BcnImpl::update_running_stats(const torch::Tensor& mean, const torch::Tensor& var,
                                   int64_t count) {
  torch::NoGradGuard no_grad;
  const double k = options_.momentum;
  // The running variance is the unbiased estimate, n/(n-1) times the batch's, as BatchNorm's
  // (Ioffe & Szegedy, 2015; PyTorch's BatchNorm1d(1) on the magnitudes keeps the same): with
  // the biased one, evaluation divided by a variance 1/(n-1) too small (0.8% at n = 128).
  const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : 1.0;
  running_mean.mul_(1 - k).add_(mean.reshape({1}).to(running_mean.dtype()), k);
  running_var.mul_(1 - k).add_(var.reshape({1}).to(running_var.dtype()), k * unbias);
}

bool BcnImpl::use_fused(const torch::Tensor& x) const {
  return options_.fused && x.dim() >= 2 && x.numel() > 0 && bcn_fused_supports(x.device());
}

torch::Tensor BcnImpl::run_fused(const torch::Tensor& input, bool extras) {
  const auto in_dtype = input.scalar_type();
  // CPU computes in float or double; CUDA also in bf16/half directly (math in float inside).
  const bool native = in_dtype == torch::kDouble ||
                      (input.is_cuda() && (in_dtype == torch::kFloat || in_dtype == torch::kHalf ||
                                           in_dtype == torch::kBFloat16));
  const auto v = vectors(native ? input : input.to(torch::kFloat));
  BcnFunctionConfig c;
  c.layout = v.layout;
  c.stats = options_.stats;
  c.bound = options_.bound;
  c.alpha = options_.alpha;
  c.eps = options_.eps;
  c.scale = extras && options_.scale_by_sqrt_dim ? std::sqrt(static_cast<double>(v.features))
                                                 : 1.0;
  c.training = is_training();
  // The affine is per channel, folded into the function's passes. With vector: sample its
  // vectors are whole maps, C runs of H*W entries that share one weight (applied after the
  // function instead, the affine would keep a second copy of the tensor for its backward and
  // cost two more passes over it).
  const bool affine = extras && options_.affine;
  const torch::Tensor w = affine ? weight : torch::Tensor(), b = affine ? bias : torch::Tensor();
  if (options_.vector == BcnVector::Sample) c.affine_run = v.features / options_.features;
  auto r = bcn_fused(v.x, w, b, mag_weight, mag_bias, running_mean, running_var, c);
  if (r.batch_mean.defined())
    update_running_stats(r.batch_mean, r.batch_var, v.x.numel() / v.features);
  // s shaped like the magnitudes (keepdim on the feature axis), as the op chain's.
  auto shape = v.x.sizes().vec();
  shape[v.layout == BcnLayout::Channels ? 1 : v.x.dim() - 1] = 1;
  last_scale_ = r.scale.reshape(shape);
  auto y = r.y.reshape(input.sizes());
  return y.scalar_type() == in_dtype ? y : y.to(in_dtype);
}

torch::Tensor BcnImpl::core(const torch::Tensor& x) {
  return use_fused(x) ? run_fused(x, /*extras=*/false) : core_reference(x);
}

torch::Tensor BcnImpl::forward(const torch::Tensor& x) {
  return use_fused(x) ? run_fused(x, /*extras=*/true) : forward_reference(x);
}

}  // namespace normexp::nn
