// AdamW (Loshchilov & Hutter 2019): Adam with weight decay decoupled from the gradient,
// p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p), the optimizer transformers and ViTs are
// trained with. Weight decay by role as in SGD (none on norm gamma/beta and biases unless
// asked). Constrained (cwo) weights get the centered gradient and the projection back onto
// their constraint set, as in the SGD step.
#include <torch/torch.h>

#include <cmath>

#include "nn/layers.h"
#include "optim/optimizer.h"

namespace normexp::optim {

AdamW::AdamW(std::vector<nn::ParamInfo> params, AdamWOptions options) : options_(options) {
  params_ = std::move(params);
  m_.resize(params_.size());
  v_.resize(params_.size());
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& info = params_[i];
    auto& p = info.tensor;
    if (!p.grad().defined()) continue;
    const bool constrained = info.role == nn::ParamRole::Constrained;
    auto g = step_gradient(info);
    if (!m_[i].defined()) {
      m_[i] = torch::zeros_like(p);
      v_[i] = torch::zeros_like(p);
    }
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    if (decays(info, options_.decay_norm_and_bias) && options_.weight_decay != 0.0)
      p.mul_(1.0 - lr * options_.weight_decay);
    auto denom = (v_[i] / c2).sqrt_().add_(options_.eps);
    p.addcdiv_(m_[i], denom, -lr / c1);
    if (constrained) nn::project_rows_(p, info.constraint);
  }
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
