// AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient,
// p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p), the optimizer transformers and ViTs are
// trained with. Weight decay by role as in SGD (none on norm gamma/beta and biases unless
// asked). Constrained (cwo) weights get the centered gradient and the projection back onto
// their constraint set, as in the SGD step.
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "nn/layers.h"
#include "optim/optimizer.h"

namespace normexp::optim {

AdamW::AdamW(std::vector<nn::ParamInfo> params, AdamWOptions options) : options_(options) {
  params_ = std::move(params);
  m_.resize(params_.size());
  v_.resize(params_.size());
}

// All tensors at once in multi-tensor (_foreach) kernels: per tensor, Adam is about nine
// small kernels, and a ViT-B/16 has ~150 parameter tensors, so a per-tensor step issues
// ~1,400 launches that an eager GPU step waits on (H200 profile: BCN's 50 extra gamma/beta
// tensors alone cost +4 % of a ViT-B step in launches, at equal GPU time; README "Measured
// on the H200"). Same arithmetic in the same order per tensor as the textbook loop.
void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  const bool decay = options_.weight_decay != 0.0;
  std::vector<at::Tensor> ps, gs, ms, vs, decayed;
  std::vector<size_t> constrained;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& info = params_[i];
    const auto& p = info.tensor;
    if (!p.grad().defined()) continue;
    if (!m_[i].defined()) {
      m_[i] = torch::zeros_like(p);
      v_[i] = torch::zeros_like(p);
    }
    ps.push_back(p);
    gs.push_back(step_gradient(info));
    ms.push_back(m_[i]);
    vs.push_back(v_[i]);
    if (decay && decays(info, options_.decay_norm_and_bias)) decayed.push_back(p);
    if (info.role == nn::ParamRole::Constrained) constrained.push_back(i);
  }
  if (ps.empty()) return;
  at::_foreach_mul_(ms, b1);
  at::_foreach_add_(ms, gs, 1.0 - b1);
  at::_foreach_mul_(vs, b2);
  at::_foreach_addcmul_(vs, gs, gs, 1.0 - b2);
  if (!decayed.empty()) at::_foreach_mul_(decayed, 1.0 - lr * options_.weight_decay);
  auto denom = at::_foreach_div(vs, c2);  // sqrt(v / c2) + eps
  at::_foreach_sqrt_(denom);
  at::_foreach_add_(denom, options_.eps);
  at::_foreach_addcdiv_(ps, ms, denom, -lr / c1);
  for (size_t i : constrained) nn::project_rows_(params_[i].tensor, params_[i].constraint);
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("adamw.step", torch::tensor(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!m_[i].defined()) continue;
    out.emplace_back("exp_avg." + params_[i].name, m_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].name, v_[i]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state) {
  auto step = state.find("adamw.step");
  t_ = step == state.end() ? 0 : step->second.item<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto m = state.find("exp_avg." + params_[i].name);
    auto v = state.find("exp_avg_sq." + params_[i].name);
    const bool have = m != state.end() && v != state.end();
    m_[i] = have ? m->second.to(params_[i].tensor.options()).clone() : at::Tensor();
    v_[i] = have ? v->second.to(params_[i].tensor.options()).clone() : at::Tensor();
  }
}

std::vector<config::OptionSpec> adamw_options() {
  using namespace config;
  return {
      opt_float("lr", 1e-3, "initial learning rate (at base_batch when scale_lr)", greater_than(0)),
      opt_float("beta1", 0.9, "first-moment decay", between(0, 1, false, true)),
      opt_float("beta2", 0.999, "second-moment decay", between(0, 1, false, true)),
      opt_float("eps", 1e-8, "added to the denominator", greater_than(0)),
      opt_float("weight_decay", 0.05, "decoupled weight decay (0.05: DeiT/timm ViT recipes)",
                at_least(0)),
      opt_bool("decay_norm_and_bias", false, "also decay norm gamma, beta and biases"),
      opt_bool("scale_lr", false, "linear scaling rule lr = lr * batch_size / base_batch"),
      opt_int("base_batch", 128, "reference batch size of the linear scaling rule", at_least(1)),
  };
}

std::unique_ptr<Optimizer> make_adamw(const config::Params& p,
                                      std::vector<nn::ParamInfo> params) {
  AdamWOptions o;
  o.beta1 = p.get_float("beta1");
  o.beta2 = p.get_float("beta2");
  o.eps = p.get_float("eps");
  o.weight_decay = p.get_float("weight_decay");
  o.decay_norm_and_bias = p.get_bool("decay_norm_and_bias");
  return std::make_unique<AdamW>(std::move(params), o);
}

}  // namespace normexp::optim
