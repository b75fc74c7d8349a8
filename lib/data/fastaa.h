#pragma once
// Fast AutoAugment (Lim et al., NeurIPS 2019) as used by Ikami et al. 2021 ("FastAA", Tables 1-2): the
// published searched policy applied to uint8 (N, C, H, W) batches on whatever device they live
// on, batched over the images (no per-image host loop). The policy is data
// (configs/augment/fastaa_cifar10_policy.json, embedded in the binary at build time); its
// "notes" give the reference semantics (PIL's) that every op here re-implements.
//
// Random numbers come only from the global generator of the batch's device, so a run that
// checkpoints the CPU/CUDA generator states resumes with the same augmentation.

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/image_policy.h"

namespace normexp::data {

// The 15 ops of the policy, in the order of the JSON's op_ranges table as sorted here.
enum class AugOp : int64_t {
  ShearX,
  ShearY,
  TranslateX,
  TranslateY,
  Rotate,
  AutoContrast,
  Invert,
  Equalize,
  Solarize,
  Posterize,
  Contrast,
  Color,
  Brightness,
  Sharpness,
  Cutout,
};
constexpr int64_t kNumAugOps = 15;
const std::string& aug_op_name(AugOp op);
// Throws std::invalid_argument listing the valid names.
AugOp aug_op_from_name(const std::string& name);

struct PolicyStep {
  AugOp op = AugOp::Invert;
  double prob = 0;   // probability of applying the op
  double level = 0;  // in [0, 1]
};

struct AugPolicy {
  std::string source;  // where it came from (built-in name or file), for messages
  std::vector<std::vector<PolicyStep>> sub_policies;
  std::array<std::pair<double, double>, kNumAugOps> ranges{};  // (low, high) per op

  // The JSON's mapping: magnitude = level * (high - low) + low (before any sign mirroring).
  double magnitude(AugOp op, double level) const;
};

// Parses the policy JSON format of configs/augment/ ("op_ranges" and "policy": a list of
// sub-policies, each a list of [op, probability, level]). Throws std::invalid_argument with
// the reason, prefixed by `origin`.
AugPolicy parse_policy(const std::string& json_text, const std::string& origin);
// The policies compiled into the binary, by name: "fastaa_cifar10".
std::vector<std::string> builtin_policy_names();
AugPolicy builtin_policy(const std::string& name);
// A built-in name, or else a path to a policy JSON file.
AugPolicy load_policy(const std::string& name_or_path);

// The policy ready to apply: per-device tensors of the sub-policies, built on first use.
class FastAutoAugment : public ImagePolicy {
 public:
  explicit FastAutoAugment(AugPolicy policy);
  const AugPolicy& policy() const { return policy_; }
  // Per image: one sub-policy drawn uniformly, each of its ops applied with its probability,
  // in order. uint8 (N, C, H, W) in and out, C = 3 (RGB) or 1 (grey).
  at::Tensor operator()(const at::Tensor& images) const override;
  // The same with the random draws given (for tests): `choice` int64 (N) sub-policy indices,
  // `apply` bool (N, K) whether step k fires, `sign` double (N, K) of +-1 (the random mirror
  // of the geometric ops), `centre` double (N, K, 2) uniform [0, 1) (y, x) of policy Cutout.
  at::Tensor apply(const at::Tensor& images, const at::Tensor& choice, const at::Tensor& apply,
                   const at::Tensor& sign, const at::Tensor& centre) const;
  int64_t steps() const { return steps_; }  // K: ops per sub-policy (the longest; padded)

 private:
  struct DeviceTables {
    at::Tensor op, prob, magnitude;  // (P, K): int64, double, double
    at::Tensor fill;                 // the policy Cutout's colour, uint8 (1, 3, 1, 1)
  };
  const DeviceTables& tables(const at::Device& device) const;

  AugPolicy policy_;
  int64_t steps_ = 0;
  mutable std::vector<std::pair<std::string, DeviceTables>> cache_;  // by device string
};

// The ops as FastAutoAugment and RandAugment apply them: K steps, one op per image per step,
// in one batched pass per step. `ops` int64 (N, K): an AugOp, or -1 for none; `mags` (N, K):
// each op's magnitude as the aug:: functions below take it (unsigned; the geometric ops are
// multiplied by `sign` (N, K) of +-1); `centre` (N, K, 2) the policy Cutout's centre in [0, 1);
// `fill` its colour, uint8 (1, C, 1, 1) on the images' device (undefined: no Cutout step).
at::Tensor apply_ops(const at::Tensor& images, const at::Tensor& ops, const at::Tensor& mags,
                     const at::Tensor& sign, const at::Tensor& centre, const at::Tensor& fill);

// The ops one by one, batched, with a per-image magnitude `v` (double (N) on the images'
// device) already mapped from the level and signed. Exposed for tests and for the preview;
// FastAutoAugment applies the same code through per-image matrices, lookup tables and blends.
namespace aug {
// PIL's Image.transform(AFFINE, (a, b, c, d, e, f), NEAREST): output pixel (x, y) takes the
// input at floor(a*(x+.5) + b*(y+.5) + c, d*(x+.5) + e*(y+.5) + f), 0 (black) outside.
// `m` double (N, 6).
at::Tensor affine_nearest(const at::Tensor& x, const at::Tensor& m);
at::Tensor shear_x(const at::Tensor& x, const at::Tensor& v);       // (x + v y, y)
at::Tensor shear_y(const at::Tensor& x, const at::Tensor& v);       // (x, y + v x)
at::Tensor translate_x(const at::Tensor& x, const at::Tensor& px);  // by px pixels
at::Tensor translate_y(const at::Tensor& x, const at::Tensor& px);
at::Tensor rotate(const at::Tensor& x, const at::Tensor& degrees);  // counter-clockwise
// Per-(image, channel) lookup tables: out[n, c] = lut[n, c, x[n, c]]; `lut` (N, C, 256).
at::Tensor apply_lut(const at::Tensor& x, const at::Tensor& lut);
at::Tensor auto_contrast(const at::Tensor& x);
at::Tensor invert(const at::Tensor& x);
at::Tensor equalize(const at::Tensor& x);
at::Tensor solarize(const at::Tensor& x, const at::Tensor& threshold);
at::Tensor posterize(const at::Tensor& x, const at::Tensor& bits);
// PIL ImageEnhance: out = clip(trunc(degenerate + v * (x - degenerate))).
at::Tensor contrast(const at::Tensor& x, const at::Tensor& v);
at::Tensor color(const at::Tensor& x, const at::Tensor& v);
at::Tensor brightness(const at::Tensor& x, const at::Tensor& v);
at::Tensor sharpness(const at::Tensor& x, const at::Tensor& v);
// PIL's "L" conversion, round((299 R + 587 G + 114 B) / 1000), as double (N, 1, H, W).
at::Tensor grayscale(const at::Tensor& x);
// Pixels whose centre lies in the square of side `side` (double (N), pixels) centred at
// (`cy`, `cx`) (double (N), pixel units: the image spans [0, H) x [0, W)), clipped at the
// borders: bool (N, 1, H, W).
at::Tensor square_mask(int64_t h, int64_t w, const at::Tensor& cy, const at::Tensor& cx,
                       const at::Tensor& side);
// The policy's Cutout: a square of side v * width at a uniform random centre, filled with
// FastAA's grey (125, 123, 114).
at::Tensor cutout(const at::Tensor& x, const at::Tensor& v);
}  // namespace aug

// DeVries & Taylor's Cutout after normalization (Ikami et al. 2021's FastAA = policy + Cutout 16x16):
// per image a size x size square at a uniformly drawn pixel centre, clipped at the borders,
// set to 0 (the mean, in normalized space). Float (N, C, H, W) in and out.
at::Tensor random_cutout(const at::Tensor& x, int64_t size);

}  // namespace normexp::data
