#include "nn/norm_scheme.h"

#include <torch/torch.h>

#include "core/error.h"
#include "nn/layers.h"

namespace normexp::nn {

torch::nn::AnyModule NormScheme::token_norm(int64_t, const std::string& where) {
  throw ConfigError("", "norm.name",
                    "this norm scheme has no layer for token features (needed at " + where +
                        "); transformers take ln, bcn or none");
}

torch::nn::AnyModule NormScheme::classifier(int64_t in, int64_t out) {
  return torch::nn::AnyModule(torch::nn::Linear(torch::nn::LinearOptions(in, out)));
}

int64_t assign_noise(torch::nn::Module& model, const NoiseSchedule& schedule, double sigma) {
  std::vector<AffineNoiseImpl*> layers;
  for (const auto& m : model.modules(/*include_self=*/true)) {
    if (auto* a = dynamic_cast<AffineNoiseImpl*>(m.get())) layers.push_back(a);
  }
  const auto L = static_cast<int64_t>(layers.size());
  for (int64_t l = 1; l <= L; ++l) layers[l - 1]->set_sigma(schedule(l, L, sigma));
  return L;
}

}  // namespace normexp::nn
