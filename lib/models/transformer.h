#pragma once
// Transformer pieces shared by the ViT and the probe encoder: multi-head self-attention that
// can keep its attention probabilities (Markou §5.2 measures their entropy), and the
// pre-norm block x + attn(norm1(x)), x + mlp(norm2(x)) whose norms come from the scheme.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "nn/norm_scheme.h"

namespace normexp::models {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads);
  // x (N, T, dim) -> (N, T, dim).
  torch::Tensor forward(const torch::Tensor& x);
  // When on, forward() keeps the softmax probabilities (N, heads, T, T), detached.
  void record(bool on) { record_ = on; }
  const torch::Tensor& attention() const { return attention_; }

 private:
  int64_t heads_, head_dim_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
  bool record_ = false;
  torch::Tensor attention_;
};
TORCH_MODULE(Attention);

// Stochastic depth (Huang et al. 2016; "drop path" in DeiT, Touvron et al. 2021): in training,
// each sample's residual branch is dropped with probability p and the kept ones scaled by
// 1/(1 - p), so the expectation is the branch; identity in evaluation or at p = 0. One
// Bernoulli draw per sample from the device's generator (capturable in a CUDA graph).
torch::Tensor drop_path(const torch::Tensor& branch, double p, bool training);

class BlockImpl : public torch::nn::Module {
 public:
  // `drop_path`: this block's stochastic-depth rate for both of its residual branches.
  BlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, nn::NormScheme& scheme,
            const std::string& where, double drop_path = 0);
  torch::Tensor forward(torch::Tensor x);
  Attention& attention() { return attn_; }
  double drop_path_rate() const { return drop_path_; }

 private:
  torch::nn::AnyModule norm1_, norm2_;
  Attention attn_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  double drop_path_;
};
TORCH_MODULE(Block);

// Truncated-normal(0, std) init in [-2 std, 2 std] (timm's ViT init for linear layers and
// embeddings).
void trunc_normal_(const torch::Tensor& t, double std);

// The probe encoder (Markou §5.2): tokens (N, T, d_in) -> Linear(d_in, dim) -> `depth`
// blocks -> final token norm -> one score per token (N, T). No position embedding: the probe's
// answer is a token, and scoring each token makes the model permutation-equivariant.
class TokenScorerImpl : public torch::nn::Module {
 public:
  TokenScorerImpl(int64_t d_in, int64_t dim, int64_t depth, int64_t heads, int64_t mlp_dim,
                  nn::NormScheme& scheme);
  torch::Tensor forward(const torch::Tensor& tokens);
  std::vector<Block>& blocks() { return blocks_; }

 private:
  torch::nn::Linear embed_{nullptr}, score_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::AnyModule norm_;
};
TORCH_MODULE(TokenScorer);

}  // namespace normexp::models
