#pragma once
// Band-Constrained Normalization (Markou, §3.2): y = s * x/||x|| with
//   s = (1 - alpha) + alpha * (bound(m~) + 1)/2,   m~ = LayerNorm(||x||),
// so ||y|| lies in [1 - alpha, 1] (Theorem 1) whatever x is.
//
// The vector x: the feature axis of the input — the last axis of (N, T, D) token features,
// the channel axis of (N, C, H, W) maps (the C-vector at each position, as LayerNorm over
// channels in a ConvNet). The paper does not say how BN in a ResNet is replaced; this is
// our choice, the one that makes "replace LN/BN" the same operation in both nets. For maps,
// `vector: sample` takes a sample's whole C*H*W map as the one vector instead (the axes of
// LayerNorm over a map, without its centering): one magnitude per sample, so its statistics
// must span the batch (stats: batch, none or literal; tokens would be degenerate).
//
// The magnitude LayerNorm: the paper's code applies nn.LayerNorm(1) to each magnitude on
// its own, which is degenerate (a single number minus its own mean is 0, so m~ = beta, a
// learned constant, and s never depends on x). The text says the statistics are over "the
// magnitude distribution"; `stats` picks the group they are taken over:
//   tokens  (default) the magnitudes of one sample: its T tokens, or its H*W positions. Same
//           computation in training and evaluation.
//   batch   every magnitude in the batch (N*T or N*H*W), with running estimates for
//           evaluation, as BatchNorm.
//   literal the paper's code as written (LayerNorm over a single magnitude: m~ = beta).
//   none    §5.4's ablation "without magnitude LayerNorm": m~ = ||x||.
// In every mode m~ = gamma * (m - mu)/sqrt(var + eps) + beta with a learned scalar gamma and
// beta (LayerNorm(1)'s two parameters), except `none`.
// `bound`: tanh (the paper) or clip (§5.4's ablation: hard clipping to [-1, 1]).
//
// Numerics: ||x|| is computed as a * ||x/a|| with a = max|x_i| (not differentiated: exact,
// since x/||x|| and ||x|| do not depend on a), so 1e30 and 1e-30 inputs neither overflow nor
// underflow in float32. A zero vector has no direction; it maps to the uniform direction
// 1/sqrt(d) (so the bound holds there too) with zero gradient, never NaN. Statistics and the
// scale are computed in float32 even under bf16 autocast.
//
// After the band map (the part Theorem 1 is about) two optional steps make BCN a drop-in
// for LN/BN: `scale_by_sqrt_dim` multiplies by sqrt(d), so each entry has RMS in
// [1 - alpha, 1] as after LayerNorm (without it a 768-wide ViT token has entries ~0.04), and
// `affine` is the usual per-feature gamma, beta. Both are on in the bcn norm scheme and
// documented as our choice; core() gives the band map alone.
//
// Implementation: forward() and core() run one autograd function with §4.1's closed-form
// backward and the sqrt(d) scale and affine folded in (nn/bcn_function.h): two passes over
// the tensor each way, and only x plus a few scalars per vector kept for backward. On CPU
// (float, double; half types via float) as loops, on CUDA (float, double, bf16, half, when
// built with CUDA) as kernels. options.fused = false runs the chain of LibTorch ops below
// (forward_reference/core_reference), which is also the tests' reference and the only path
// that supports double backward.

#include <cstdint>
#include <string>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "nn/layers.h"

namespace normexp::nn {

enum class BcnStats { Tokens, Batch, Literal, None };
enum class BcnBound { Tanh, Clip };
// Where the feature vector is: dim 1 of (N, C, ...) maps, or the last dim of (..., D).
enum class BcnLayout { Channels, Tokens };
// Channels layout only: the C-vector at each position, or a sample's whole map.
enum class BcnVector { Position, Sample };

BcnStats parse_bcn_stats(const std::string& s);  // tokens|batch|literal|none
BcnBound parse_bcn_bound(const std::string& s);  // tanh|clip
BcnVector parse_bcn_vector(const std::string& s);  // position|sample

struct BcnOptions {
  int64_t features = 0;  // d: channels or token width
  BcnLayout layout = BcnLayout::Channels;
  BcnVector vector = BcnVector::Position;  // Channels layout only
  double alpha = 0.2;    // Markou §5.1: alpha = 0.2
  double eps = 1e-5;     // the paper's epsilon (LayerNorm and normalize)
  BcnStats stats = BcnStats::Tokens;
  BcnBound bound = BcnBound::Tanh;
  bool scale_by_sqrt_dim = true;
  bool affine = true;
  double momentum = 0.1;  // running magnitude statistics (stats: batch)
  // Inputs go through one autograd function with §4.1's closed-form backward
  // (nn/bcn_function.h; CPU, and CUDA in builds with it); false: the chain of LibTorch ops
  // (the reference the function is tested against, and the only one with double backward).
  bool fused = true;
};

// s as a function of m~ (the band map's scale): (1-alpha) + alpha*(bound(m~)+1)/2.
torch::Tensor bcn_scale(const torch::Tensor& m_tilde, double alpha, BcnBound bound);

class BcnImpl : public torch::nn::Cloneable<BcnImpl>, public NormLayer {
 public:
  explicit BcnImpl(BcnOptions options);
  void reset() override;
  // sqrt(d)-scaling and affine applied to core(x).
  torch::Tensor forward(const torch::Tensor& x);
  // The band map y = s * x/||x|| alone: ||y|| in [1 - alpha, 1] along the feature axis.
  torch::Tensor core(const torch::Tensor& x);
  // forward() and core() as the op chain, whatever options.fused says (tests' reference).
  torch::Tensor forward_reference(const torch::Tensor& x);
  torch::Tensor core_reference(const torch::Tensor& x);
  // The scale s of the last core() call, shaped like the magnitudes (for analysis).
  const torch::Tensor& last_scale() const { return last_scale_; }
  const BcnOptions& options() const { return options_; }

  torch::Tensor mag_weight, mag_bias;     // LayerNorm(1)'s gamma, beta (scalars)
  torch::Tensor weight, bias;             // per-feature affine (when options.affine)
  torch::Tensor running_mean, running_var;  // stats: batch

 private:
  // The tensor the band map runs on, with the layout and width of its vectors: x itself, or
  // for vector: sample an (N, 1, C*H*W) view of it in the Tokens layout.
  struct Vectors {
    torch::Tensor x;
    BcnLayout layout;
    int64_t features;
  };
  Vectors vectors(const torch::Tensor& x) const;
  torch::Tensor band_reference(const Vectors& v);
  // y * gamma + beta per feature (the layer's layout), in y's dtype.
  torch::Tensor apply_affine(const torch::Tensor& y) const;
  bool use_fused(const torch::Tensor& x) const;
  // Moves the running estimates toward a training batch's magnitude statistics: `mean` and the
  // biased `var` of its `count` magnitudes.
  void update_running_stats(const torch::Tensor& mean, const torch::Tensor& var, int64_t count);
  torch::Tensor run_fused(const torch::Tensor& x, bool extras);
  BcnOptions options_;
  torch::Tensor last_scale_;
};
TORCH_MODULE(Bcn);

}  // namespace normexp::nn
