#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/schema.h"
#include "nn/params.h"

namespace normexp::optim {

// optim.lr, times batch_size / base_batch when the optimizer's scale_lr is on (the linear
// scaling rule; Ikami et al. 2021 Table 2: lr = eta * B / 128).
double scaled_lr(const config::Params& optim, int64_t batch_size);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` from the gradients in .grad().
  virtual void step(double lr) = 0;
  // Whether step_on_device() exists: an update without host-side state that changes from
  // step to step, so that a CUDA graph can capture it (SGD; not AdamW, whose bias correction
  // counts steps on the host).
  virtual bool capturable() const { return false; }
  // The same update with the learning rate read on the device from `lr`, a 0-dim tensor of
  // the parameters' dtype and device: a captured graph then replays with whatever value the
  // schedule last wrote there. std::logic_error unless capturable().
  virtual void step_on_device(const at::Tensor& lr);
  void zero_grad();
  const std::vector<nn::ParamInfo>& params() const { return params_; }
  // Internal state (e.g. momentum buffers) by name, for checkpoints; load_state restores it
  // onto the parameters' devices. Keys absent from the map leave that state empty.
  virtual std::vector<std::pair<std::string, at::Tensor>> state() const { return {}; }
  virtual void load_state(const std::map<std::string, at::Tensor>& state) { (void)state; }

 protected:
  // The gradient a step uses: centered per row for constrained weights with centering on
  // (Ikami et al. 2021 Algorithm 1), the raw gradient otherwise.
  static at::Tensor step_gradient(const nn::ParamInfo& info);
  // Whether weight decay applies: weights (constrained or not) always, norm gamma/beta and
  // biases only when asked (Ikami et al. 2021 §4.1.1 does not decay them).
  static bool decays(const nn::ParamInfo& info, bool decay_norm_and_bias);

  std::vector<nn::ParamInfo> params_;
};

// SGD with momentum (PyTorch's formulation: buf = m*buf + g; p -= lr*buf; Nesterov:
// p -= lr*(g + m*buf)) and decoupled-by-role weight decay (added to g, L2 style). For
// constrained weights it is the projected step of Ikami et al. 2021 Algorithm 1: the gradient (and
// so the momentum) is centered per row when centering is on, and after the update each row
// is projected back onto the constraint set.
struct SgdOptions {
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  bool decay_norm_and_bias = false;  // Ikami et al. 2021 §4.1.1: no decay on gamma, beta
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<nn::ParamInfo> params, SgdOptions options);
  void step(double lr) override;
  bool capturable() const override { return true; }
  void step_on_device(const at::Tensor& lr) override;
  std::vector<std::pair<std::string, at::Tensor>> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;

 private:
  template <class Lr>
  void update_one(size_t i, const Lr& lr);  // the per-tensor update of parameter i
  // step() and step_on_device(): lr a host number or a 0-dim device tensor.
  template <class Lr>
  void step_with(const Lr& lr);

  SgdOptions options_;
  std::vector<torch::Tensor> buffers_;
};

std::vector<config::OptionSpec> sgd_options();
std::unique_ptr<Optimizer> make_sgd(const config::Params& p, std::vector<nn::ParamInfo> params);

// AdamW (Loshchilov & Hutter 2019), decoupled weight decay by role; the projected step for
// constrained weights as in Sgd.
struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.05;
  bool decay_norm_and_bias = false;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<nn::ParamInfo> params, AdamWOptions options);
  void step(double lr) override;
  std::vector<std::pair<std::string, at::Tensor>> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;

 private:
  AdamWOptions options_;
  int64_t t_ = 0;
  std::vector<torch::Tensor> m_, v_;
};

std::vector<config::OptionSpec> adamw_options();
std::unique_ptr<Optimizer> make_adamw(const config::Params& p, std::vector<nn::ParamInfo> params);

}  // namespace normexp::optim
