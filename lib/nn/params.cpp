#include "nn/params.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>

namespace normexp::nn {

std::string canonical_name(const std::string& name) {
  std::string out;
  size_t begin = 0;
  while (begin <= name.size()) {
    const size_t end = std::min(name.find('.', begin), name.size());
    const std::string part = name.substr(begin, end - begin);
    if (part != "watched") out += (out.empty() ? "" : ".") + part;
    begin = end + 1;
  }
  return out;
}

const char* role_name(ParamRole role) {
  switch (role) {
    case ParamRole::Weight: return "weight";
    case ParamRole::Constrained: return "constrained";
    case ParamRole::NormAffine: return "norm_affine";
    case ParamRole::Bias: return "bias";
  }
  return "?";
}

namespace {
// Ours carry the NormLayer mark; LibTorch's own norm layers are named here once.
bool is_norm_module(torch::nn::Module& m) {
  return dynamic_cast<NormLayer*>(&m) || dynamic_cast<torch::nn::BatchNorm2dImpl*>(&m) ||
         dynamic_cast<torch::nn::BatchNorm1dImpl*>(&m) ||
         dynamic_cast<torch::nn::GroupNormImpl*>(&m) ||
         dynamic_cast<torch::nn::LayerNormImpl*>(&m);
}

const ConstraintSpec* constraint_of(torch::nn::Module& m) {
  if (auto* c = dynamic_cast<ConstrainedConv2dImpl*>(&m)) return &c->constraint();
  if (auto* l = dynamic_cast<ConstrainedLinearImpl*>(&m)) return &l->constraint();
  return nullptr;
}
}  // namespace

std::vector<ParamInfo> classify_parameters(torch::nn::Module& model) {
  std::vector<ParamInfo> out;
  for (const auto& item : model.named_modules()) {
    torch::nn::Module& m = *item.value();
    const bool norm = is_norm_module(m);
    const ConstraintSpec* constraint = constraint_of(m);
    for (const auto& p : m.named_parameters(/*recurse=*/false)) {
      if (!p.value().requires_grad()) continue;
      ParamInfo info;
      info.name = canonical_name(item.key().empty() ? p.key() : item.key() + "." + p.key());
      info.tensor = p.value();
      if (norm) {
        info.role = ParamRole::NormAffine;
      } else if (p.key() == "bias" || p.value().dim() <= 1 || p.key() == "cls_token" ||
                 p.key() == "pos_embed") {
        // Biases, and a ViT's class token and position embedding (no decay, as in timm).
        info.role = ParamRole::Bias;
      } else if (constraint && p.key() == "weight") {
        info.role = ParamRole::Constrained;
        info.constraint = *constraint;
      }
      out.push_back(std::move(info));
    }
  }
  return out;
}

}  // namespace normexp::nn
