#pragma once
// Helpers for tests that check a model's forward against a functional re-implementation of
// the paper's architecture written in the test: a parameter or buffer by its registered name,
// every BatchNorm given random statistics and affine (so each one matters in eval mode), and
// an eval-mode BatchNorm computed from a module's tensors.

#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace normexp::testing {

inline at::Tensor named_tensor(const torch::nn::Module& model, const std::string& name) {
  if (const auto* p = model.named_parameters().find(name)) return *p;
  if (const auto* b = model.named_buffers().find(name)) return *b;
  throw std::out_of_range("the model has no parameter or buffer named " + name);
}

inline bool has_tensor(const torch::nn::Module& model, const std::string& name) {
  return model.named_parameters().find(name) != nullptr ||
         model.named_buffers().find(name) != nullptr;
}

// The BatchNorms' names (every module with a running_mean), in registration order.
inline std::vector<std::string> batch_norm_prefixes(const torch::nn::Module& model) {
  const std::string suffix = ".running_mean";
  std::vector<std::string> out;
  for (const auto& b : model.named_buffers()) {
    const auto& key = b.key();
    if (key.size() > suffix.size() &&
        key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(key.substr(0, key.size() - suffix.size()));
  }
  return out;
}

// The model in double and eval mode, every BatchNorm with running mean ~ N(0, 0.2^2),
// running var ~ U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.2^2).
inline void randomize_batch_norms(torch::nn::Module& model) {
  at::NoGradGuard no_grad;
  model.to(at::kDouble);
  for (const auto& prefix : batch_norm_prefixes(model)) {
    named_tensor(model, prefix + ".running_mean").normal_(0.0, 0.2);
    named_tensor(model, prefix + ".running_var").uniform_(0.5, 2.0);
    named_tensor(model, prefix + ".weight").uniform_(0.5, 1.5);
    named_tensor(model, prefix + ".bias").normal_(0.0, 0.2);
  }
  model.eval();
}

// (x - running_mean) / sqrt(running_var + eps) * weight + bias per channel (dim 1).
inline at::Tensor eval_batch_norm(const torch::nn::Module& model, const std::string& prefix,
                                  const at::Tensor& x, double eps = 1e-5) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = -1;
  auto per_channel = [&](const char* what) {
    return named_tensor(model, prefix + what).view(shape);
  };
  return (x - per_channel(".running_mean")) / (per_channel(".running_var") + eps).sqrt() *
             per_channel(".weight") +
         per_channel(".bias");
}

}  // namespace normexp::testing
