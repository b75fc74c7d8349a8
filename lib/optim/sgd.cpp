#include <torch/torch.h>

#include <stdexcept>

#include "backend/torch_compat.h"
#include "nn/layers.h"
#include "optim/optimizer.h"

namespace normexp::optim {

void Optimizer::zero_grad() {
  // One multi-tensor kernel, not one fill per parameter (which a CUDA graph replays too).
  std::vector<at::Tensor> grads;
  for (auto& p : params_)
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  if (!grads.empty()) at::_foreach_zero_(grads);
}

double scaled_lr(const config::Params& optim, int64_t batch_size) {
  double lr = optim.get_float("lr");
  if (optim.has("scale_lr") && optim.get_bool("scale_lr"))
    lr *= static_cast<double>(batch_size) / optim.get_int("base_batch");
  return lr;
}

at::Tensor Optimizer::step_gradient(const nn::ParamInfo& info) {
  auto g = info.tensor.grad();
  if (info.role != nn::ParamRole::Constrained) return g;
  const auto& c = info.constraint;
  const bool tangent = c.tangent && c.sphere;
  if (!c.center && !tangent) return g;
  g = g.clone();
  if (c.center) nn::center_rows_(g);
  if (tangent) nn::remove_radial_rows_(g, info.tensor);
  return g;
}

bool Optimizer::decays(const nn::ParamInfo& info, bool decay_norm_and_bias) {
  // On a sphere, decay is a radial step: the tangent update removes it with the rest.
  if (info.role == nn::ParamRole::Constrained)
    return !(info.constraint.tangent && info.constraint.sphere);
  return info.role == nn::ParamRole::Weight || decay_norm_and_bias;
}

Sgd::Sgd(std::vector<nn::ParamInfo> params, SgdOptions options) : options_(options) {
  params_ = std::move(params);
  buffers_.resize(params_.size());
}

void Optimizer::step_on_device(const at::Tensor& lr) {
  (void)lr;
  throw std::logic_error("this optimizer has no device-side step (capturable() is false)");
}

namespace {
// p -= lr * g, with lr a host number or a 0-dim device tensor (one kernel either way).
void descend(at::Tensor& p, const at::Tensor& g, double lr) { p.add_(g, -lr); }
void descend(at::Tensor& p, const at::Tensor& g, const at::Tensor& lr) { p.addcmul_(g, lr, -1); }
}  // namespace

void Sgd::step(double lr) { step_with(lr); }

// Under a CUDA graph too: replay removes the launches' host cost, not the kernels' own few
// microseconds each. Per tensor, WRN-28-10 at B = 4 spent 1.06 of its 3.80 ms per replayed
// step in the optimizer's ~490 small kernels (H200 profile, README "Measured on the H200").
void Sgd::step_on_device(const at::Tensor& lr) { step_with(lr); }

namespace {
// p_i -= lr * u_i for every i, in multi-tensor kernels.
void descend_all(const std::vector<at::Tensor>& ps, const std::vector<at::Tensor>& us,
                 double lr) {
  at::_foreach_add_(ps, us, -lr);
}
void descend_all(const std::vector<at::Tensor>& ps, const std::vector<at::Tensor>& us,
                 const at::Tensor& lr) {
  compat::foreach_sub_scaled_(ps, us, lr);
}
}  // namespace

template <class Lr>
void Sgd::step_with(const Lr& lr) {
  torch::NoGradGuard no_grad;
  // Plain parameters with momentum state go through multi-tensor ops: a handful of kernels for
  // all of them instead of about four per tensor, which is what an eager GPU step is bound
  // by for deep nets (ResNet-110 has ~330 parameter tensors). The rest (first step,
  // constrained weights, no momentum) take the per-tensor path. Same arithmetic, same order.
  const bool decay = options_.weight_decay != 0.0;
  std::vector<size_t> rest, plain, decayed;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& info = params_[i];
    if (!info.tensor.grad().defined()) continue;
    if (options_.momentum == 0.0 || info.role == nn::ParamRole::Constrained ||
        !buffers_[i].defined())
      rest.push_back(i);
    else
      (decay && decays(info, options_.decay_norm_and_bias) ? decayed : plain).push_back(i);
  }
  std::vector<at::Tensor> ps, gs, bufs, decay_ps, decay_gs;
  for (size_t i : plain) {
    ps.push_back(params_[i].tensor);
    gs.push_back(params_[i].tensor.grad());
    bufs.push_back(buffers_[i]);
  }
  for (size_t i : decayed) {
    decay_ps.push_back(params_[i].tensor);
    decay_gs.push_back(params_[i].tensor.grad());
    bufs.push_back(buffers_[i]);
  }
  if (!decayed.empty()) {
    auto with_decay = at::_foreach_add(decay_gs, decay_ps, options_.weight_decay);  // g + wd p
    ps.insert(ps.end(), decay_ps.begin(), decay_ps.end());
    gs.insert(gs.end(), with_decay.begin(), with_decay.end());
  }
  if (!ps.empty()) {
    at::_foreach_mul_(bufs, options_.momentum);
    at::_foreach_add_(bufs, gs);
    if (options_.nesterov) {
      descend_all(ps, at::_foreach_add(gs, bufs, options_.momentum), lr);
    } else {
      descend_all(ps, bufs, lr);
    }
  }
  for (size_t i : rest) update_one(i, lr);
}

template <class Lr>
void Sgd::update_one(size_t i, const Lr& lr) {
  auto& info = params_[i];
  auto& p = info.tensor;
  const bool constrained = info.role == nn::ParamRole::Constrained;
  auto g = step_gradient(info);
  if (decays(info, options_.decay_norm_and_bias) && options_.weight_decay != 0.0)
    g = g.add(p, options_.weight_decay);
  if (options_.momentum != 0.0 && !(constrained && !info.constraint.momentum)) {
    auto& buf = buffers_[i];
    if (!buf.defined()) {
      buf = g.detach().clone();
    } else {
      buf.mul_(options_.momentum).add_(g);
    }
    g = options_.nesterov ? g.add(buf, options_.momentum) : buf;
  }
  descend(p, g, lr);
  if (constrained) nn::project_rows_(p, info.constraint);
}

std::vector<std::pair<std::string, at::Tensor>> Sgd::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < buffers_.size(); ++i)
    if (buffers_[i].defined()) out.emplace_back("momentum." + params_[i].name, buffers_[i]);
  return out;
}

void Sgd::load_state(const std::map<std::string, at::Tensor>& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = state.find("momentum." + params_[i].name);
    buffers_[i] = it == state.end() ? at::Tensor()
                                    : it->second.to(params_[i].tensor.options()).clone();
  }
}

std::vector<config::OptionSpec> sgd_options() {
  using namespace config;
  return {
      opt_float("lr", 0.1, "initial learning rate (at base_batch when scale_lr)", greater_than(0)),
      opt_float("momentum", 0.9, "momentum", between(0, 1, false, true)),
      opt_bool("nesterov", false, "Nesterov momentum"),
      opt_float("weight_decay", 5e-4, "L2 weight decay (Ikami et al. 2021: 1e-3 CNN/ResNet, 5e-3 WRN)",
                at_least(0)),
      opt_bool("decay_norm_and_bias", false,
               "also decay norm/affine gamma, beta and biases (Ikami et al. 2021 §4.1.1 does not)"),
      opt_bool("scale_lr", false, "linear scaling rule lr = lr * batch_size / base_batch"),
      opt_int("base_batch", 128, "reference batch size of the linear scaling rule", at_least(1)),
  };
}

std::unique_ptr<Optimizer> make_sgd(const config::Params& p, std::vector<nn::ParamInfo> params) {
  SgdOptions o;
  o.momentum = p.get_float("momentum");
  o.nesterov = p.get_bool("nesterov");
  o.weight_decay = p.get_float("weight_decay");
  o.decay_norm_and_bias = p.get_bool("decay_norm_and_bias");
  if (o.nesterov && o.momentum == 0.0)
    throw p.error("nesterov", "Nesterov momentum needs optim.momentum > 0");
  return std::make_unique<Sgd>(std::move(params), o);
}

}  // namespace normexp::optim
