// Fast AutoAugment's 15 ops on uint8 batches, the policy reader and the batched policy
// application. Kept in one file (about 500 lines) on purpose: the ops share private helpers
// (PIL's affine matrices, lookup tables, ImageEnhance degenerates) that nothing else uses,
// and splitting the file would turn them into a public interface.
#include "data/fastaa.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/fs.h"

namespace normexp::embedded {
// Generated at build time from configs/augment/*.json (cmake/embed_text.cmake).
std::string_view fastaa_cifar10_policy_json();
}  // namespace normexp::embedded

namespace normexp::data {

namespace {

using torch::indexing::Slice;

const std::array<std::string, kNumAugOps>& op_names() {
  static const std::array<std::string, kNumAugOps> k{
      "ShearX",       "ShearY", "TranslateX", "TranslateY", "Rotate",
      "AutoContrast", "Invert", "Equalize",   "Solarize",   "Posterize",
      "Contrast",     "Color",  "Brightness", "Sharpness",  "Cutout"};
  return k;
}

bool is_geometric(AugOp op) {
  return static_cast<int64_t>(op) <= static_cast<int64_t>(AugOp::Rotate);
}

at::TensorOptions dbl(const at::Tensor& like) {
  return torch::TensorOptions().dtype(torch::kDouble).device(like.device());
}

void check_images(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kUInt8, what,
              " expects uint8 (N, C, H, W) images, got ", x.scalar_type(), " ", x.sizes());
}

// Python's round(v, 15), which PIL applies to the rotation matrix (so that 90 degrees is
// exact); nearbyint on the scaled value is the same up to the last bit.
at::Tensor round15(const at::Tensor& v) {
  return torch::round(v * 1e15) / 1e15;
}

// --- affine matrices (PIL AFFINE data: output -> input), double (N, 6) ---
// Built on the device (eye) rather than copied from the host: a host-to-device copy of a
// pageable buffer would block until the GPU has drained the previous training step.
at::Tensor identity_matrix(int64_t n, const at::TensorOptions& o) {
  return torch::eye(2, 3, o).view({1, 6}).expand({n, 6});
}
at::Tensor shear_x_matrix(const at::Tensor& v) {
  auto one = torch::ones_like(v), zero = torch::zeros_like(v);
  return torch::stack({one, v, zero, zero, one, zero}, 1);
}
at::Tensor shear_y_matrix(const at::Tensor& v) {
  auto one = torch::ones_like(v), zero = torch::zeros_like(v);
  return torch::stack({one, zero, zero, v, one, zero}, 1);
}
at::Tensor translate_matrix(const at::Tensor& dx, const at::Tensor& dy) {
  auto one = torch::ones_like(dx), zero = torch::zeros_like(dx);
  return torch::stack({one, zero, dx, zero, one, dy}, 1);
}
// PIL's Image.rotate(v): the angle taken mod 360, the inverse rotation about the image
// centre (W/2, H/2), matrix entries rounded to 15 decimals; evaluated in PIL's order.
at::Tensor rotate_matrix(const at::Tensor& degrees, int64_t h, int64_t w) {
  const double cx = w / 2.0, cy = h / 2.0;
  auto a = -(torch::remainder(degrees, 360.0) * (M_PI / 180.0));
  auto c = round15(torch::cos(a)), s = round15(torch::sin(a));
  auto ms = -s;
  auto tx = (c * -cx + s * -cy) + cx;
  auto ty = (ms * -cx + c * -cy) + cy;
  return torch::stack({c, s, tx, ms, c, ty}, 1);
}

// --- lookup tables, int64 (N, C, 256) ---
at::Tensor levels(const at::Tensor& like) {
  return torch::arange(256, dbl(like)).view({1, 1, 256});
}
at::Tensor identity_lut(int64_t n, int64_t c, const at::Tensor& like) {
  return torch::arange(256, like.options().dtype(torch::kLong))
      .view({1, 1, 256})
      .expand({n, c, 256});
}
at::Tensor invert_lut(int64_t n, int64_t c, const at::Tensor& like) {
  return 255 - identity_lut(n, c, like);
}
// PIL ImageOps.solarize: pixels >= threshold become 255 - pixel.
at::Tensor solarize_lut(const at::Tensor& threshold, int64_t c, const at::Tensor& like) {
  auto i = levels(like);
  auto out = torch::where(i < threshold.view({-1, 1, 1}), i, 255 - i);
  return out.to(torch::kLong).expand({threshold.size(0), c, 256});
}
// PIL ImageOps.posterize(int(v)): keep the top int(v) bits (FastAA clamps bits to >= 1).
at::Tensor posterize_lut(const at::Tensor& bits, int64_t c, const at::Tensor& like) {
  auto b = torch::trunc(bits).clamp(1, 8).view({-1, 1, 1});
  auto step = torch::pow(2.0, 8 - b);
  auto i = levels(like);
  return (i - torch::fmod(i, step)).to(torch::kLong).expand({bits.size(0), c, 256});
}
// PIL ImageOps.autocontrast (cutoff 0), per channel from its lowest and highest value:
// lut[i] = int(i * scale + offset) clamped, scale = 255/(hi - lo), offset = -lo * scale, in
// double as PIL computes it (which maps hi to 254 for some (lo, hi)); identity when hi <= lo.
at::Tensor auto_contrast_lut(const at::Tensor& lo, const at::Tensor& hi) {
  auto lo_d = lo.to(torch::kDouble).unsqueeze(-1), hi_d = hi.to(torch::kDouble).unsqueeze(-1);
  auto flat = hi_d > lo_d;
  auto scale = 255.0 / torch::where(flat, hi_d - lo_d, torch::ones_like(hi_d));
  auto offset = -lo_d * scale;
  auto i = torch::arange(256, dbl(lo)).view({1, 1, 256});
  auto mapped = torch::trunc(i * scale + offset).clamp(0, 255);
  return torch::where(flat, mapped, i.expand_as(mapped)).to(torch::kLong);
}
// PIL ImageOps.equalize, per channel, from the values sorted per (image, channel) (NC, HW):
// step = (pixels - count of the highest value present) // 255; lut[i] = (step // 2 +
// #pixels below i) // step, clamped to 255; identity when one value only or step == 0.
at::Tensor equalize_lut(const at::Tensor& sorted, int64_t n, int64_t c) {
  const int64_t hw = sorted.size(1);
  auto bounds = torch::arange(256, sorted.options()).view({1, 256}).expand({sorted.size(0), 256});
  auto below = torch::searchsorted(sorted, bounds.contiguous());  // #pixels < i, (NC, 256)
  auto lo = sorted.select(1, 0), hi = sorted.select(1, hw - 1);
  auto at_hi = hw - below.gather(1, hi.view({-1, 1})).squeeze(1);
  auto step = torch::div(hw - at_hi, 255, "floor");
  auto usable = (hi > lo) & (step > 0);
  auto safe = torch::where(usable, step, torch::ones_like(step)).view({-1, 1});
  auto mapped = torch::div(torch::div(safe, 2, "floor") + below, safe, "floor").clamp_max(255);
  auto ident = torch::arange(256, sorted.options()).view({1, 256}).expand_as(mapped);
  return torch::where(usable.view({-1, 1}), mapped, ident).view({n, c, 256});
}
at::Tensor sorted_values(const at::Tensor& x) {
  return std::get<0>(x.reshape({x.size(0) * x.size(1), -1}).to(torch::kLong).sort(1));
}

// --- ImageEnhance degenerates, float (N, C or 1, H, W) ---
// PIL's "L" conversion: the JSON's weights (299, 587, 114)/1000 in 16-bit fixed point,
// rounded: (19595 R + 38470 G + 7471 B + 2^15) >> 16.
at::Tensor gray_levels(const at::Tensor& x) {
  TORCH_CHECK(x.size(1) == 3 || x.size(1) == 1, "Color/Contrast need 1 or 3 channels, got ",
              x.size(1));
  if (x.size(1) == 1) return x.to(torch::kLong);
  auto v = x.to(torch::kLong);
  auto l = v.select(1, 0) * 19595 + v.select(1, 1) * 38470 + v.select(1, 2) * 7471 + 32768;
  return torch::div(l, 65536, "floor").unsqueeze(1);
}
// PIL ImageEnhance.Contrast: the mean of the grey image rounded, int(mean + 0.5).
at::Tensor mean_gray(const at::Tensor& x) {
  auto m = gray_levels(x).to(torch::kDouble).mean({1, 2, 3}, /*keepdim=*/true);
  return torch::floor(m + 0.5);
}
// PIL ImageFilter.SMOOTH: 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13, rounded; the one-pixel
// border is left as it is. (The exact value is never halfway: 13 is odd.)
at::Tensor smoothed(const at::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto xd = x.to(torch::kDouble);
  if (h < 3 || w < 3) return xd;
  auto flat = xd.reshape({n * c, 1, h, w});
  auto sum9 = torch::avg_pool2d(flat, {3, 3}, {1, 1}) * 9.0;
  auto centre = flat.index({Slice(), Slice(), Slice(1, h - 1), Slice(1, w - 1)});
  auto inner = torch::round((sum9 + 4.0 * centre) / 13.0);
  auto out = flat.clone();
  out.index_put_({Slice(), Slice(), Slice(1, h - 1), Slice(1, w - 1)}, inner);
  return out.view({n, c, h, w});
}
// PIL Image.blend(degenerate, image, factor): temp = deg + factor * (img - deg) in single
// precision (the factor is a C float there), 0 at or below 0, 255 at or above 255, else
// truncated.
at::Tensor blend(const at::Tensor& degenerate, const at::Tensor& x, const at::Tensor& factor) {
  auto deg = degenerate.to(torch::kFloat);
  auto f = factor.to(torch::kFloat).view({-1, 1, 1, 1});
  auto temp = deg + f * (x.to(torch::kFloat) - deg);
  return torch::trunc(temp).clamp(0, 255).to(torch::kUInt8);
}

// FastAA's Cutout fill colour (a host tensor copied to the device: FastAutoAugment keeps one
// per device).
at::Tensor cutout_fill(int64_t c, const at::Tensor& like) {
  if (c == 3) return torch::tensor({125, 123, 114}, like.options()).view({1, 3, 1, 1});
  return torch::full({1, c, 1, 1}, 125, like.options());
}

}  // namespace

const std::string& aug_op_name(AugOp op) {
  return op_names().at(static_cast<size_t>(op));
}

AugOp aug_op_from_name(const std::string& name) {
  const auto& names = op_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<AugOp>(i);
  throw std::invalid_argument(
      fmt::format("unknown op '{}' (valid: {})", name, fmt::join(names, ", ")));
}

double AugPolicy::magnitude(AugOp op, double level) const {
  const auto& [lo, hi] = ranges[static_cast<size_t>(op)];
  return level * (hi - lo) + lo;
}

AugPolicy parse_policy(const std::string& json_text, const std::string& origin) {
  auto fail = [&](const std::string& why) {
    return std::invalid_argument("policy " + origin + ": " + why);
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("op_ranges") || !j.contains("policy"))
    throw fail("expected an object with 'op_ranges' and 'policy'");
  AugPolicy p;
  p.source = origin;
  std::array<bool, kNumAugOps> have{};
  for (const auto& [name, range] : j["op_ranges"].items()) {
    AugOp op;
    try {
      op = aug_op_from_name(name);
    } catch (const std::invalid_argument& e) {
      throw fail(std::string("op_ranges: ") + e.what());
    }
    if (!range.is_array() || range.size() != 2 || !range[0].is_number() || !range[1].is_number())
      throw fail("op_ranges." + name + ": expected [low, high]");
    p.ranges[static_cast<size_t>(op)] = {range[0].get<double>(), range[1].get<double>()};
    have[static_cast<size_t>(op)] = true;
  }
  const auto& subs = j["policy"];
  if (!subs.is_array() || subs.empty()) throw fail("'policy' must be a non-empty list");
  for (size_t i = 0; i < subs.size(); ++i) {
    const auto& sub = subs[i];
    const std::string at = fmt::format("policy[{}]", i);
    if (!sub.is_array() || sub.empty()) throw fail(at + ": expected a list of [op, p, level]");
    std::vector<PolicyStep> steps;
    for (size_t k = 0; k < sub.size(); ++k) {
      const auto& s = sub[k];
      const std::string sat = fmt::format("{}[{}]", at, k);
      if (!s.is_array() || s.size() != 3 || !s[0].is_string() || !s[1].is_number() ||
          !s[2].is_number())
        throw fail(sat + ": expected [op, probability, level]");
      PolicyStep step;
      try {
        step.op = aug_op_from_name(s[0].get<std::string>());
      } catch (const std::invalid_argument& e) {
        throw fail(sat + ": " + e.what());
      }
      step.prob = s[1].get<double>();
      step.level = s[2].get<double>();
      if (!(step.prob >= 0 && step.prob <= 1)) throw fail(sat + ": probability outside [0, 1]");
      if (!(step.level >= 0 && step.level <= 1)) throw fail(sat + ": level outside [0, 1]");
      if (!have[static_cast<size_t>(step.op)])
        throw fail(sat + ": op " + aug_op_name(step.op) + " has no entry in op_ranges");
      steps.push_back(step);
    }
    p.sub_policies.push_back(std::move(steps));
  }
  return p;
}

std::vector<std::string> builtin_policy_names() {
  return {"fastaa_cifar10"};
}

AugPolicy builtin_policy(const std::string& name) {
  if (name == "fastaa_cifar10")
    return parse_policy(std::string(embedded::fastaa_cifar10_policy_json()),
                        "fastaa_cifar10 (built in)");
  throw std::invalid_argument(fmt::format("no built-in policy '{}' (built in: {})", name,
                                          fmt::join(builtin_policy_names(), ", ")));
}

AugPolicy load_policy(const std::string& name_or_path) {
  for (const auto& n : builtin_policy_names())
    if (n == name_or_path) return builtin_policy(n);
  if (!std::filesystem::exists(name_or_path))
    throw std::invalid_argument(
        fmt::format("'{}' is neither a built-in policy ({}) nor an existing file", name_or_path,
                    fmt::join(builtin_policy_names(), ", ")));
  return parse_policy(read_file(name_or_path), name_or_path);
}

// --- the ops ---
namespace aug {

at::Tensor affine_nearest(const at::Tensor& x, const at::Tensor& m) {
  check_images(x, "affine_nearest");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto md = m.to(dbl(x)).view({n, 6, 1, 1});
  auto xs = (torch::arange(w, dbl(x)) + 0.5).view({1, 1, w});
  auto ys = (torch::arange(h, dbl(x)) + 0.5).view({1, h, 1});
  auto col = [&](int64_t i) { return md.select(1, i); };  // (N, 1, 1)
  auto xin = torch::floor(col(0) * xs + col(1) * ys + col(2));
  auto yin = torch::floor(col(3) * xs + col(4) * ys + col(5));
  auto valid = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h);  // (N, H, W)
  auto idx = (yin.clamp(0, h - 1) * w + xin.clamp(0, w - 1)).to(torch::kLong).view({n, 1, h * w});
  auto out = x.reshape({n, c, h * w}).gather(2, idx.expand({n, c, h * w})).view({n, c, h, w});
  return out * valid.unsqueeze(1).to(torch::kUInt8);
}

at::Tensor shear_x(const at::Tensor& x, const at::Tensor& v) {
  return affine_nearest(x, shear_x_matrix(v.to(dbl(x))));
}
at::Tensor shear_y(const at::Tensor& x, const at::Tensor& v) {
  return affine_nearest(x, shear_y_matrix(v.to(dbl(x))));
}
at::Tensor translate_x(const at::Tensor& x, const at::Tensor& px) {
  auto v = px.to(dbl(x));
  return affine_nearest(x, translate_matrix(v, torch::zeros_like(v)));
}
at::Tensor translate_y(const at::Tensor& x, const at::Tensor& px) {
  auto v = px.to(dbl(x));
  return affine_nearest(x, translate_matrix(torch::zeros_like(v), v));
}
at::Tensor rotate(const at::Tensor& x, const at::Tensor& degrees) {
  return affine_nearest(x, rotate_matrix(degrees.to(dbl(x)), x.size(2), x.size(3)));
}

at::Tensor apply_lut(const at::Tensor& x, const at::Tensor& lut) {
  check_images(x, "apply_lut");
  const int64_t n = x.size(0), c = x.size(1);
  auto idx = x.reshape({n, c, -1}).to(torch::kLong);
  return lut.to(torch::kUInt8).gather(2, idx).view(x.sizes());
}
at::Tensor auto_contrast(const at::Tensor& x) {
  auto flat = x.reshape({x.size(0), x.size(1), -1});
  return apply_lut(x, auto_contrast_lut(std::get<0>(flat.min(2)), std::get<0>(flat.max(2))));
}
at::Tensor invert(const at::Tensor& x) {
  return apply_lut(x, invert_lut(x.size(0), x.size(1), x));
}
at::Tensor equalize(const at::Tensor& x) {
  return apply_lut(x, equalize_lut(sorted_values(x), x.size(0), x.size(1)));
}
at::Tensor solarize(const at::Tensor& x, const at::Tensor& threshold) {
  return apply_lut(x, solarize_lut(threshold.to(dbl(x)), x.size(1), x));
}
at::Tensor posterize(const at::Tensor& x, const at::Tensor& bits) {
  return apply_lut(x, posterize_lut(bits.to(dbl(x)), x.size(1), x));
}

at::Tensor grayscale(const at::Tensor& x) {
  return gray_levels(x).to(torch::kDouble);
}
at::Tensor contrast(const at::Tensor& x, const at::Tensor& v) {
  return blend(mean_gray(x), x, v);
}
at::Tensor color(const at::Tensor& x, const at::Tensor& v) {
  return blend(grayscale(x), x, v);
}
at::Tensor brightness(const at::Tensor& x, const at::Tensor& v) {
  return blend(torch::zeros({1, 1, 1, 1}, dbl(x)), x, v);
}
at::Tensor sharpness(const at::Tensor& x, const at::Tensor& v) {
  return blend(smoothed(x), x, v);
}

at::Tensor square_mask(int64_t h, int64_t w, const at::Tensor& cy, const at::Tensor& cx,
                       const at::Tensor& side) {
  auto o = cy.options().dtype(torch::kDouble);
  auto half = (side.to(torch::kDouble) / 2).view({-1, 1, 1, 1});
  auto ys = (torch::arange(h, o) + 0.5).view({1, 1, h, 1});
  auto xs = (torch::arange(w, o) + 0.5).view({1, 1, 1, w});
  auto y = cy.to(torch::kDouble).view({-1, 1, 1, 1}), x = cx.to(torch::kDouble).view({-1, 1, 1, 1});
  return (ys >= y - half) & (ys < y + half) & (xs >= x - half) & (xs < x + half);
}

at::Tensor cutout(const at::Tensor& x, const at::Tensor& v) {
  check_images(x, "cutout");
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  auto centre = torch::rand({n, 2}, dbl(x));
  auto mask = square_mask(h, w, centre.select(1, 0) * h, centre.select(1, 1) * w, v.to(dbl(x)) * w);
  return torch::where(mask, cutout_fill(x.size(1), x), x);
}

}  // namespace aug

// --- the policy ---

FastAutoAugment::FastAutoAugment(AugPolicy policy) : policy_(std::move(policy)) {
  for (const auto& sub : policy_.sub_policies)
    steps_ = std::max<int64_t>(steps_, static_cast<int64_t>(sub.size()));
}

const FastAutoAugment::DeviceTables& FastAutoAugment::tables(const at::Device& device) const {
  const std::string key = device.str();
  for (const auto& [k, t] : cache_)
    if (k == key) return t;
  const auto p = static_cast<int64_t>(policy_.sub_policies.size());
  std::vector<int64_t> op(p * steps_, static_cast<int64_t>(AugOp::Invert));
  std::vector<double> prob(p * steps_, 0.0), mag(p * steps_, 0.0);  // padding never fires
  for (int64_t i = 0; i < p; ++i) {
    const auto& sub = policy_.sub_policies[i];
    for (size_t k = 0; k < sub.size(); ++k) {
      op[i * steps_ + k] = static_cast<int64_t>(sub[k].op);
      prob[i * steps_ + k] = sub[k].prob;
      mag[i * steps_ + k] = policy_.magnitude(sub[k].op, sub[k].level);
    }
  }
  DeviceTables t;
  t.op = torch::tensor(op, torch::kLong).view({p, steps_}).to(device);
  t.prob = torch::tensor(prob, torch::kDouble).view({p, steps_}).to(device);
  t.magnitude = torch::tensor(mag, torch::kDouble).view({p, steps_}).to(device);
  t.fill =
      cutout_fill(3, torch::empty({0}, torch::TensorOptions().dtype(torch::kUInt8).device(device)));
  cache_.emplace_back(key, std::move(t));
  return cache_.back().second;
}

at::Tensor FastAutoAugment::operator()(const at::Tensor& images) const {
  check_images(images, "FastAutoAugment");
  const int64_t n = images.size(0);
  const auto& t = tables(images.device());
  auto o = dbl(images);
  // Every draw is made whatever it decides, so the generator advances the same way for
  // every batch of a given size.
  auto choice = torch::randint(0, t.op.size(0), {n}, o.dtype(torch::kLong));
  auto chosen_prob = t.prob.index_select(0, choice);
  auto fires = torch::rand({n, steps_}, o) < chosen_prob;
  auto sign = torch::where(torch::rand({n, steps_}, o) < 0.5, -1.0, 1.0);
  auto centre = torch::rand({n, steps_, 2}, o);
  return apply(images, choice, fires, sign, centre);
}

at::Tensor FastAutoAugment::apply(const at::Tensor& images, const at::Tensor& choice,
                                  const at::Tensor& fires, const at::Tensor& sign,
                                  const at::Tensor& centre) const {
  check_images(images, "FastAutoAugment");
  const auto& t = tables(images.device());
  // -1 where a step does not fire: apply_ops then leaves the image as it is.
  const auto chosen = t.op.index_select(0, choice);
  const auto ops = torch::where(fires, chosen, torch::full_like(chosen, -1));
  return apply_ops(images, ops, t.magnitude.index_select(0, choice), sign, centre,
                   images.size(1) == 3 ? t.fill : t.fill.narrow(1, 0, 1));
}

at::Tensor apply_ops(const at::Tensor& images, const at::Tensor& ops, const at::Tensor& mags,
                     const at::Tensor& sign, const at::Tensor& centre, const at::Tensor& fill) {
  check_images(images, "the augmentation ops");
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  TORCH_CHECK(c == 3 || c == 1,
              "the augmentation ops need RGB or grey images (Color and Contrast "
              "blend with the grey image), got ",
              c, " channels");
  const int64_t steps = ops.size(1);
  auto o = dbl(images);
  at::Tensor x = images;
  for (int64_t k = 0; k < steps; ++k) {
    auto op = ops.select(1, k);
    auto is = [&](AugOp a) { return op == static_cast<int64_t>(a); };
    auto v = mags.select(1, k).to(torch::kDouble);
    auto signed_v = v * sign.select(1, k).to(torch::kDouble);

    // Geometric ops: one nearest-neighbour resampling with a per-image matrix.
    auto m = identity_matrix(n, o);
    auto col = [](const at::Tensor& b) { return b.view({-1, 1}); };
    m = torch::where(col(is(AugOp::ShearX)), shear_x_matrix(signed_v), m);
    m = torch::where(col(is(AugOp::ShearY)), shear_y_matrix(signed_v), m);
    auto zero = torch::zeros_like(v);
    m = torch::where(col(is(AugOp::TranslateX)), translate_matrix(signed_v * w, zero), m);
    m = torch::where(col(is(AugOp::TranslateY)), translate_matrix(zero, signed_v * h), m);
    m = torch::where(col(is(AugOp::Rotate)), rotate_matrix(signed_v, h, w), m);
    x = aug::affine_nearest(x, m);

    // Per-channel value maps: one lookup per pixel with a per-(image, channel) table.
    auto sorted = sorted_values(x);
    auto lo = sorted.select(1, 0).view({n, c}), hi = sorted.select(1, h * w - 1).view({n, c});
    auto lut = identity_lut(n, c, x);
    auto sel = [](const at::Tensor& b) { return b.view({-1, 1, 1}); };
    lut = torch::where(sel(is(AugOp::AutoContrast)), auto_contrast_lut(lo, hi), lut);
    lut = torch::where(sel(is(AugOp::Invert)), invert_lut(n, c, x), lut);
    lut = torch::where(sel(is(AugOp::Equalize)), equalize_lut(sorted, n, c), lut);
    lut = torch::where(sel(is(AugOp::Solarize)), solarize_lut(v, c, x), lut);
    lut = torch::where(sel(is(AugOp::Posterize)), posterize_lut(v, c, x), lut);
    x = aug::apply_lut(x, lut);

    // ImageEnhance blends with a per-image degenerate image and factor (1 = unchanged).
    auto four = [](const at::Tensor& b) { return b.view({-1, 1, 1, 1}); };
    auto xd = x.to(torch::kDouble);
    at::Tensor deg = torch::zeros_like(xd);
    deg = torch::where(four(is(AugOp::Contrast)), mean_gray(x).expand_as(xd), deg);
    deg = torch::where(four(is(AugOp::Color)), aug::grayscale(x).expand_as(xd), deg);
    deg = torch::where(four(is(AugOp::Sharpness)), smoothed(x), deg);
    auto blends =
        is(AugOp::Contrast) | is(AugOp::Color) | is(AugOp::Brightness) | is(AugOp::Sharpness);
    x = blend(deg, x, torch::where(blends, v, torch::ones_like(v)));

    // The policy's Cutout: a grey square of side v * width.
    if (!fill.defined()) continue;
    auto cen = centre.select(1, k).to(torch::kDouble);
    auto mask = aug::square_mask(h, w, cen.select(1, 0) * h, cen.select(1, 1) * w, v * w) &
                four(is(AugOp::Cutout));
    x = torch::where(mask, fill, x);
  }
  return x;
}

at::Tensor random_cutout(const at::Tensor& x, int64_t size) {
  if (size <= 0) return x;
  TORCH_CHECK(x.dim() == 4, "random_cutout expects (N, C, H, W), got ", x.sizes());
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  auto o = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  // DeVries & Taylor: centre drawn uniformly over the pixels, square clipped at the borders.
  auto cy = torch::randint(0, h, {n}, o), cx = torch::randint(0, w, {n}, o);
  auto side = torch::full({n}, static_cast<double>(size), o.dtype(torch::kDouble));
  auto mask = aug::square_mask(h, w, cy.to(torch::kDouble), cx.to(torch::kDouble), side);
  return x.masked_fill(mask, 0);
}

}  // namespace normexp::data
