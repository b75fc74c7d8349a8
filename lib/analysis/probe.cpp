#include "analysis/probe.h"

#include <torch/torch.h>

#include <cmath>

#include "analysis/spectral.h"
#include "nn/layers.h"

namespace normexp::analysis {

ProbeImpl::ProbeImpl(ProbeKind kind, std::string where, torch::nn::AnyModule inner)
    : kind_(kind), where_(std::move(where)), inner_(std::move(inner)) {
  register_module("inner", inner_.ptr());
}

torch::Tensor ProbeImpl::forward(torch::Tensor x) {
  if (kind_ == ProbeKind::Conv || chw_.empty()) {
    chw_.assign(x.sizes().begin() + 1, x.sizes().end());
  }
  if (recording_ && kind_ != ProbeKind::Conv) {
    torch::NoGradGuard no_grad;
    auto xd = x.detach().to(torch::kFloat);
    // Every axis but the channel axis (1 for conv features, the last for tokens).
    const int64_t channel = kind_ == ProbeKind::Norm ? 1 : xd.dim() - 1;
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < xd.dim(); ++d)
      if (d != channel) dims.push_back(d);
    auto s = xd.var(dims, /*unbiased=*/false).sqrt().to(torch::kDouble);
    sigma_sum_ = sigma_sum_.defined() ? sigma_sum_ + s : s;
    ++batches_;
  }
  return inner_.forward(x);
}

void ProbeImpl::clear() {
  sigma_sum_ = torch::Tensor();
  batches_ = 0;
}

torch::Tensor ProbeImpl::sigma() const {
  if (batches_ == 0) return torch::Tensor();
  return (sigma_sum_ / static_cast<double>(batches_)).cpu();
}

ProbedScheme::ProbedScheme(std::unique_ptr<nn::NormScheme> inner)
    : ForwardingScheme(std::move(inner)) {}

torch::nn::AnyModule ProbedScheme::conv(const nn::ConvSpec& spec) {
  Probe p(ProbeKind::Conv, "conv" + std::to_string(conv_count_++), inner().conv(spec));
  p->conv_spec = spec;
  convs_.push_back(p);
  return torch::nn::AnyModule(p);
}

torch::nn::AnyModule ProbedScheme::norm(int64_t channels, const std::string& where) {
  Probe p(ProbeKind::Norm, where, inner().norm(channels, where));
  norms_.push_back(p);
  return torch::nn::AnyModule(p);
}

torch::nn::AnyModule ProbedScheme::residual_norm(int64_t channels, const std::string& where) {
  Probe p(ProbeKind::Norm, where, inner().residual_norm(channels, where));
  norms_.push_back(p);
  return torch::nn::AnyModule(p);
}

torch::nn::AnyModule ProbedScheme::token_norm(int64_t dim, const std::string& where) {
  Probe p(ProbeKind::TokenNorm, where, inner().token_norm(dim, where));
  norms_.push_back(p);
  return torch::nn::AnyModule(p);
}

torch::nn::AnyModule ProbedScheme::classifier(int64_t in, int64_t out) {
  auto c = inner().classifier(in, out);
  classifier_ = c.ptr();
  return c;
}

void ProbedScheme::set_recording(bool on) {
  for (auto& p : norms_) p->set_recording(on);
}

void ProbedScheme::clear() {
  for (auto& p : norms_) p->clear();
}

std::vector<LayerWeightNorm> layer_norms(const ProbedScheme& scheme, int64_t iters) {
  torch::NoGradGuard no_grad;
  std::vector<LayerWeightNorm> out;
  for (const auto& p : scheme.conv_probes()) {
    auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(p->inner().ptr().get());
    if (!conv || p->input_chw().size() != 3) continue;  // not a 2-D conv, or never run
    torch::Tensor w = conv->weight;
    if (auto* ws = dynamic_cast<nn::WSConv2dImpl*>(conv)) w = ws->standardized_weight();
    const auto& o = conv->options;
    Conv2dGeometry g;
    g.stride_h = g.stride_w = p->conv_spec.stride;
    g.pad_h = g.pad_w = p->conv_spec.padding;
    g.dil_h = (*o.dilation())[0];
    g.dil_w = (*o.dilation())[1];
    g.groups = o.groups();
    LayerWeightNorm n;
    n.where = p->where();
    n.spectral = conv2d_spectral_norm(w, p->input_chw(), g, iters);
    n.frobenius = w.norm().item<double>();
    out.push_back(n);
  }
  if (auto* lin = dynamic_cast<torch::nn::LinearImpl*>(scheme.classifier_module().get())) {
    LayerWeightNorm n;
    n.where = "classifier";
    // A plain matrix: its exact norm from the SVD. Power iteration can stop early (its
    // relative-change test) when the top two singular values are close, off by 1e-3.
    n.spectral = at::linalg_matrix_norm(lin->weight.detach().to(torch::kDouble), 2, {-2, -1},
                                        false, c10::nullopt)
                     .item<double>();
    n.frobenius = lin->weight.norm().item<double>();
    out.push_back(n);
  }
  return out;
}

SigmaSummary sigma_summary(const ProbedScheme& scheme) {
  SigmaSummary s;
  for (const auto& p : scheme.norm_probes()) {
    auto sigma = p->sigma();
    if (!sigma.defined()) continue;
    const double mean = sigma.mean().item<double>();
    const double mn = sigma.min().item<double>();
    s.where.push_back(p->where());
    s.sigma_mean.push_back(mean);
    s.sigma_min.push_back(mn);
    s.log10_inv_sigma_prod -= std::log10(mean);
    s.log10_inv_sigma_min_prod -= std::log10(mn);
  }
  return s;
}

}  // namespace normexp::analysis
