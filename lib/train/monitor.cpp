#include "train/monitor.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace normexp::train {

namespace {
// RMS in float32 whatever the activation dtype (bf16 squares overflow early).
at::Tensor rms(const at::Tensor& t) { return t.detach().to(torch::kFloat).pow(2).mean().sqrt(); }
at::Tensor absmax(const at::Tensor& t) { return t.detach().abs().max().to(torch::kFloat); }

// Records `step` in `first` the first time `t` holds a non-finite value (device only).
void mark_first_bad(at::Tensor& first, const at::Tensor& t, const at::Tensor& step) {
  auto bad = t.detach().isfinite().all().logical_not();
  first.copy_(torch::where(first.lt(0).logical_and(bad), step, first));
}
}  // namespace

WatchImpl::WatchImpl(std::string where, std::string kind, torch::nn::AnyModule inner)
    : where_(std::move(where)), kind_(std::move(kind)), inner_(std::move(inner)) {
  register_module("watched", inner_.ptr());
}

torch::Tensor WatchImpl::forward(torch::Tensor x) {
  auto y = inner_.forward(x);
  if (!sampling_ && !checking_) return y;
  if (!bad_out_.defined() || bad_out_.device() != y.device()) {
    const auto on = torch::TensorOptions().device(y.device());
    bad_out_ = torch::full({}, -1, on.dtype(torch::kLong));
    bad_grad_ = torch::full({}, -1, on.dtype(torch::kLong));
    if (!step_.defined()) step_ = torch::zeros({}, on.dtype(torch::kLong));
  }
  if (checking_) mark_first_bad(bad_out_, y, step_);
  if (sampling_) {
    out_rms_ = rms(y);
    out_absmax_ = absmax(y);
    grad_rms_ = at::Tensor();
  }
  if (y.requires_grad()) {
    // The hook sees the gradient flowing back into this output during backward().
    const bool sample = sampling_, check = checking_;
    y.register_hook([this, sample, check](const torch::Tensor& g) {
      if (sample) grad_rms_ = rms(g);
      if (check) mark_first_bad(bad_grad_, g, step_);
    });
  }
  return y;
}

at::Tensor WatchImpl::stats() const {
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  const auto device = out_rms_.defined() ? out_rms_.device() : torch::Device(torch::kCPU);
  auto none = torch::full({}, nan, torch::TensorOptions().device(device).dtype(torch::kFloat));
  auto or_nan = [&](const at::Tensor& t) { return t.defined() ? t : none; };
  std::vector<at::Tensor> v{or_nan(out_rms_), or_nan(out_absmax_), or_nan(grad_rms_)};
  const auto params = inner_.ptr()->named_parameters(/*recurse=*/false);
  for (const char* name : {"weight", "bias"}) {
    const auto* p = params.find(name);
    if (!p || !p->defined()) {
      v.insert(v.end(), {none, none, none});
      continue;
    }
    v.push_back(rms(*p));
    v.push_back(absmax(*p));
    v.push_back(p->grad().defined() ? rms(p->grad()) : none);
  }
  const auto* w = params.find("weight");
  if (w && w->defined() && w->dim() >= 2) {
    const auto rows = w->detach().flatten(1).to(torch::kFloat);
    const auto n = static_cast<double>(rows.size(1));
    v.push_back((rows.sum(1).pow(2) / rows.pow(2).sum(1).mul(n).clamp_min(1e-30)).mean());
  } else {
    v.push_back(none);
  }
  return torch::stack(v);
}

void WatchImpl::reset_checks() {
  if (bad_out_.defined()) bad_out_.fill_(-1);
  if (bad_grad_.defined()) bad_grad_.fill_(-1);
}

MonitoredScheme::MonitoredScheme(std::unique_ptr<nn::NormScheme> inner)
    : ForwardingScheme(std::move(inner)) {}

torch::nn::AnyModule MonitoredScheme::watch(std::string where, std::string kind,
                                            torch::nn::AnyModule inner) {
  if (inner.is_empty()) return inner;
  Watch w(std::move(where), std::move(kind), std::move(inner));
  watches_.push_back(w);
  return torch::nn::AnyModule(w);
}

torch::nn::AnyModule MonitoredScheme::conv(const nn::ConvSpec& spec) {
  return watch("conv" + std::to_string(convs_++), "conv", inner().conv(spec));
}
torch::nn::AnyModule MonitoredScheme::norm(int64_t channels, const std::string& where) {
  return watch(where, "norm", inner().norm(channels, where));
}
torch::nn::AnyModule MonitoredScheme::residual_norm(int64_t channels, const std::string& where) {
  return watch(where, "norm", inner().residual_norm(channels, where));
}
torch::nn::AnyModule MonitoredScheme::branch_scale(int64_t channels, const std::string& where) {
  return watch(where, "scale", inner().branch_scale(channels, where));
}
torch::nn::AnyModule MonitoredScheme::token_norm(int64_t dim, const std::string& where) {
  return watch(where, "norm", inner().token_norm(dim, where));
}
torch::nn::AnyModule MonitoredScheme::classifier(int64_t in, int64_t out) {
  return watch("classifier", "classifier", inner().classifier(in, out));
}

LayerMonitor::LayerMonitor(std::vector<Watch> watches, int64_t every, const c10::Device& device)
    : watches_(std::move(watches)), every_(every) {
  step_ = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kLong));
  for (auto& w : watches_) w->set_step_counter(step_);
  set_checking(every_ > 0);
}

void LayerMonitor::set_checking(bool on) {
  for (auto& w : watches_) w->set_checking(on);
}

void LayerMonitor::before_step(int64_t step) {
  step_host_ = step;
  step_.fill_(step);
  const bool sample = every_ > 0 && (step % every_ == 0 || step == 1);
  if (sample != sampling_)
    for (auto& w : watches_) w->set_sampling(sample);
  sampling_ = sample;
}

void LayerMonitor::after_step(const at::Tensor& logits, const at::Tensor& loss) {
  if (!sampling_) return;
  std::vector<at::Tensor> rows;
  rows.reserve(watches_.size());
  for (const auto& w : watches_) rows.push_back(w->stats());
  pending_.push_back({step_host_, torch::stack(rows), loss.detach().to(torch::kFloat),
                      rms(logits)});
}

std::vector<nlohmann::json> LayerMonitor::take_rows() {
  std::vector<nlohmann::json> out;
  for (const auto& p : pending_) {
    const auto stats = p.stats.cpu();
    const auto a = stats.accessor<float, 2>();
    nlohmann::json layers = nlohmann::json::array();
    for (size_t i = 0; i < watches_.size(); ++i) {
      nlohmann::json l = {{"layer", watches_[i]->where()}, {"kind", watches_[i]->kind()}};
      for (int64_t k = 0; k < kLayerStats; ++k) {
        const float v = a[static_cast<int64_t>(i)][k];
        // JSON has no NaN: absent tensors and non-finite values are written as null.
        l[kLayerStatNames[k]] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
      }
      layers.push_back(std::move(l));
    }
    const float loss = p.loss.item<float>(), logit_rms = p.logit_rms.item<float>();
    out.push_back({{"step", p.step},
                   {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr)},
                   {"logit_rms", std::isfinite(logit_rms) ? nlohmann::json(logit_rms)
                                                          : nlohmann::json(nullptr)},
                   {"layers", std::move(layers)}});
  }
  pending_.clear();
  return out;
}

nlohmann::json LayerMonitor::first_nonfinite() const {
  nlohmann::json out = nlohmann::json::object();
  // The earliest step wins; within a step, forward order for outputs and backward order (the
  // reverse) for gradients, which is the order in which the values were computed.
  auto find = [&](bool gradient) -> nlohmann::json {
    int64_t best_step = -1;
    const WatchImpl* best = nullptr;
    auto consider = [&](const WatchImpl& w) {
      const auto& t = gradient ? w.first_bad_gradient() : w.first_bad_output();
      if (!t.defined()) return;
      const int64_t s = t.item<int64_t>();
      if (s >= 0 && (best_step < 0 || s < best_step)) {
        best_step = s;
        best = &w;
      }
    };
    if (gradient) {
      for (auto it = watches_.rbegin(); it != watches_.rend(); ++it) consider(**it);
    } else {
      for (const auto& w : watches_) consider(*w);
    }
    if (!best) return nullptr;
    return {{"layer", best->where()}, {"kind", best->kind()}, {"step", best_step}};
  };
  auto o = find(false), g = find(true);
  if (!o.is_null()) out["output"] = o;
  if (!g.is_null()) out["gradient"] = g;
  return out;
}

}  // namespace normexp::train
