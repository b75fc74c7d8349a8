#pragma once
// A normalization scheme decides three things for every model (design guide): the conv it
// builds, the layer after that conv, and what happens to the weights around the optimizer
// step (cwo keeps them on the constraint set; the projection itself runs in lib/optim from
// the ParamInfo the scheme's modules produce). Models never name a norm: they ask the scheme.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "config/schema.h"

namespace normexp::nn {

struct ConvSpec {
  int64_t in = 0, out = 0, kernel = 3, stride = 1, padding = 1;
};

// sigma_l for noise layer l (1-based) of L, given the configured sigma.
using NoiseSchedule = std::function<double(int64_t l, int64_t L, double sigma)>;

class NormScheme {
 public:
  virtual ~NormScheme() = default;

  // The convolution of a conv-norm pair (no bias: the layer after it has one).
  virtual torch::nn::AnyModule conv(const ConvSpec& spec) = 0;
  // The layer placed right after a conv with `channels` outputs. `where` names the layer
  // ("layer2.0.bn1", "features.1") for error messages (e.g. groups not dividing channels).
  virtual torch::nn::AnyModule norm(int64_t channels, const std::string& where) = 0;
  // The layer that ends a residual branch (right before the addition). The same as norm()
  // unless a scheme initializes it differently (cwo: norm.residual_gamma).
  virtual torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) {
    return norm(channels, where);
  }
  // A per-channel scale that ends a residual branch whose last layer is a conv (the
  // pre-activation blocks of WRN, where no norm follows the branch's last conv), applied right
  // before the addition. Empty (no layer) unless the scheme needs one: cwo starts it at
  // norm.residual_gamma, so a branch can start as the identity and still receive gradient
  // (a zero gamma *inside* the branch, before a ReLU, would stop every gradient to it).
  virtual torch::nn::AnyModule branch_scale(int64_t channels, const std::string& where) {
    (void)channels;
    (void)where;
    return {};
  }
  // The layer a transformer puts where LayerNorm goes, over the last axis of (N, T, dim)
  // token features. Schemes without one (bn, gn, cwo, ...) throw a ConfigError at
  // norm.name naming the schemes that have one.
  virtual torch::nn::AnyModule token_norm(int64_t dim, const std::string& where);
  // The final classifier (a plain nn::Linear unless the scheme constrains it).
  virtual torch::nn::AnyModule classifier(int64_t in, int64_t out);
  // Called by the builder (train::ComponentFactory::model) once the whole model is built,
  // e.g. to assign per-layer noise levels, which needs the number of noise layers L.
  virtual void finalize(torch::nn::Module& model) { (void)model; }
};

// Base of the decorators that wrap a scheme (analysis::ProbedScheme, train::MonitoredScheme):
// everything goes to the wrapped scheme unless a decorator overrides it, so a layer kind added
// to NormScheme reaches every decorator without touching it.
class ForwardingScheme : public NormScheme {
 public:
  explicit ForwardingScheme(std::unique_ptr<NormScheme> inner) : inner_(std::move(inner)) {}
  torch::nn::AnyModule conv(const ConvSpec& spec) override { return inner_->conv(spec); }
  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override {
    return inner_->norm(channels, where);
  }
  torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) override {
    return inner_->residual_norm(channels, where);
  }
  torch::nn::AnyModule branch_scale(int64_t channels, const std::string& where) override {
    return inner_->branch_scale(channels, where);
  }
  torch::nn::AnyModule token_norm(int64_t dim, const std::string& where) override {
    return inner_->token_norm(dim, where);
  }
  torch::nn::AnyModule classifier(int64_t in, int64_t out) override {
    return inner_->classifier(in, out);
  }
  void finalize(torch::nn::Module& model) override { inner_->finalize(model); }

 protected:
  NormScheme& inner() { return *inner_; }

 private:
  std::unique_ptr<NormScheme> inner_;
};

// Walks the model (registration order = forward order for our models) and sets sigma_l on
// every AffineNoise layer; returns L.
int64_t assign_noise(torch::nn::Module& model, const NoiseSchedule& schedule, double sigma);

}  // namespace normexp::nn
