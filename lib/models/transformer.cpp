#include "models/transformer.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace normexp::models {

void trunc_normal_(const torch::Tensor& t, double std) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std);
}

namespace {
torch::nn::Linear make_linear(int64_t in, int64_t out) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out));
  trunc_normal_(l->weight, 0.02);
  torch::nn::init::zeros_(l->bias);
  return l;
}
}  // namespace

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
  if (heads < 1 || dim % heads != 0)
    throw std::invalid_argument(std::to_string(heads) + " heads do not divide width " +
                                std::to_string(dim));
  head_dim_ = dim / heads;
  qkv_ = register_module("qkv", make_linear(dim, 3 * dim));
  proj_ = register_module("proj", make_linear(dim, dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), t = x.size(1), d = x.size(2);
  // (N, T, 3, heads, hd) -> (3, N, heads, T, hd)
  auto qkv = qkv_->forward(x).view({n, t, 3, heads_, head_dim_}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto logits = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim_));
  auto p = torch::softmax(logits, -1);
  if (record_) attention_ = p.detach();
  auto out = torch::matmul(p, v).transpose(1, 2).reshape({n, t, d});
  return proj_->forward(out);
}

torch::Tensor drop_path(const torch::Tensor& branch, double p, bool training) {
  if (!training || p <= 0) return branch;
  std::vector<int64_t> shape(branch.dim(), 1);
  shape[0] = branch.size(0);
  const auto keep = torch::empty(shape, branch.options()).bernoulli_(1 - p);
  return branch * keep.div_(1 - p);
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, nn::NormScheme& scheme,
                     const std::string& where, double drop_path)
    : drop_path_(drop_path) {
  norm1_ = scheme.token_norm(dim, where + ".norm1");
  register_module("norm1", norm1_.ptr());
  attn_ = register_module("attn", Attention(dim, heads));
  norm2_ = scheme.token_norm(dim, where + ".norm2");
  register_module("norm2", norm2_.ptr());
  fc1_ = register_module("fc1", make_linear(dim, mlp_dim));
  fc2_ = register_module("fc2", make_linear(mlp_dim, dim));
}

torch::Tensor BlockImpl::forward(torch::Tensor x) {
  x = x + drop_path(attn_->forward(norm1_.forward(x)), drop_path_, is_training());
  return x + drop_path(fc2_->forward(torch::gelu(fc1_->forward(norm2_.forward(x)))), drop_path_,
                       is_training());
}

TokenScorerImpl::TokenScorerImpl(int64_t d_in, int64_t dim, int64_t depth, int64_t heads,
                                 int64_t mlp_dim, nn::NormScheme& scheme) {
  embed_ = register_module("embed", make_linear(d_in, dim));
  for (int64_t i = 0; i < depth; ++i) {
    const std::string name = "blocks." + std::to_string(i);
    blocks_.push_back(register_module("block" + std::to_string(i),
                                      Block(dim, heads, mlp_dim, scheme, name)));
  }
  norm_ = scheme.token_norm(dim, "norm");
  register_module("norm", norm_.ptr());
  score_ = register_module("score", make_linear(dim, 1));
}

torch::Tensor TokenScorerImpl::forward(const torch::Tensor& tokens) {
  auto x = embed_->forward(tokens);
  for (auto& b : blocks_) x = b->forward(x);
  return score_->forward(norm_.forward(x)).squeeze(-1);
}

}  // namespace normexp::models
