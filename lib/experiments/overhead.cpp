#include "experiments/overhead.h"

#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>

#include "analysis/profile.h"
#include "nn/bcn.h"
#include "nn/layers.h"
#include "backend/cuda_backend.h"
#include "backend/device.h"

namespace normexp::experiments {

std::vector<std::string> default_overhead_shapes(bool cuda) {
  // ViT-B/16 at 224 px (197 tokens x 768) and a CIFAR ViT (65 x 192); ResNet-50 maps after
  // stages 1 and 3 at 224 px. Smaller batches on CPU keep the run to about a minute.
  if (cuda) return {"128x197x768", "256x65x192", "64x256x56x56", "64x1024x14x14"};
  return {"16x197x768", "64x65x192", "8x256x56x56", "8x1024x14x14"};
}

namespace {
std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, 'x')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(part, &used);
      if (used != part.size() || v < 1) throw std::invalid_argument(part);
      out.push_back(v);
    } catch (const std::exception&) {
      throw std::invalid_argument("bad shape '" + s + "': expected NxTxD or NxCxHxW");
    }
  }
  if (out.size() != 3 && out.size() != 4)
    throw std::invalid_argument("bad shape '" + s + "': expected NxTxD or NxCxHxW");
  return out;
}

// Bytes in use by malloc (small blocks + mmapped large blocks): on CPU, the growth across
// a forward pass is what autograd keeps for backward plus the output.
int64_t cpu_bytes_in_use() {
  const auto info = mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

struct Sample {
  std::vector<double> fwd_ms, bwd_ms;
  std::vector<int64_t> bytes;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}
}  // namespace

nlohmann::json bench_norm_overhead(const OverheadOptions& o) {
  const bool cuda = o.device.is_cuda();
  const auto shapes = o.shapes.empty() ? default_overhead_shapes(cuda) : o.shapes;
  const auto dtype = (o.bf16 && cuda) ? torch::kBFloat16 : torch::kFloat;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& shape_s : shapes) {
    const auto shape = parse_shape(shape_s);
    const bool conv = shape.size() == 4;
    const int64_t d = conv ? shape[1] : shape[2];
    nn::BcnOptions bo;
    bo.features = d;
    bo.layout = conv ? nn::BcnLayout::Channels : nn::BcnLayout::Tokens;
    torch::nn::AnyModule base = conv ? torch::nn::AnyModule(torch::nn::BatchNorm2d(d))
                                     : torch::nn::AnyModule(torch::nn::LayerNorm(
                                           torch::nn::LayerNormOptions({d})));
    // BCN twice: the fused autograd function (the default) and the op chain it replaced.
    torch::nn::AnyModule bcn{nn::Bcn(bo)};
    auto chain_opts = bo;
    chain_opts.fused = false;
    torch::nn::AnyModule chain{nn::Bcn(chain_opts)};
    // For maps also the reading the paper's ResNet configs train with (configs/bcn/*resnet50*):
    // a sample's whole C*H*W map as the vector, magnitude statistics over the batch (so the
    // statistics span the batch and the CPU loops cannot finish a sample while it is in cache).
    torch::nn::AnyModule whole_map;
    if (conv) {
      auto map_opts = bo;
      map_opts.vector = nn::BcnVector::Sample;
      map_opts.stats = nn::BcnStats::Batch;
      whole_map = torch::nn::AnyModule(nn::Bcn(map_opts));
      whole_map.ptr()->to(o.device);
    }
    // For maps also cwo's affine + noise layer (Ikami et al. 2021 Eq. 7, the noise per sample
    // and channel as its configs train), on BatchNorm's kernels (the default) and as the
    // addcmul op chain it replaced: what replacing BatchNorm by it costs per layer.
    torch::nn::AnyModule affine, affine_chain;
    if (conv) {
      for (bool fused : {true, false}) {
        nn::AffineNoise a(d, /*per_batch=*/false, nn::AffineInit::Unit, 1.0, fused);
        a->set_sigma(0.1);
        a->to(o.device);
        (fused ? affine : affine_chain) = torch::nn::AnyModule(a);
      }
    }
    // With bf16 inputs BCN's and BatchNorm's parameters (and running estimates) stay float32,
    // as under bf16 autocast in training, where BatchNorm takes cuDNN's mixed-precision path.
    // LayerNorm gets bf16 ones: its pure bf16 kernel is the harder baseline (autocast would
    // run LayerNorm in float32 on an upcast copy, which costs more).
    base.ptr()->to(o.device, conv ? torch::kFloat : dtype);
    bcn.ptr()->to(o.device);
    chain.ptr()->to(o.device);
    auto x = torch::randn(shape, torch::TensorOptions().device(o.device).dtype(dtype));
    auto grad = torch::randn_like(x);
    constexpr int kMaxMods = 6;
    const int kMods = conv ? 6 : 3;
    Sample samples[kMaxMods];
    torch::nn::AnyModule* mods[kMaxMods] = {&base, &bcn, &chain, &whole_map, &affine,
                                            &affine_chain};
    auto now = [] { return std::chrono::steady_clock::now(); };
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    for (int64_t rep = 0; rep < o.warmup + o.repeats; ++rep) {
      for (int k = 0; k < kMods; ++k) {
        auto xi = x.detach().requires_grad_(true);
        backend::synchronize(o.device);
        if (cuda) cuda::reset_peak_memory();
        const int64_t before = cuda ? cuda::memory_allocated() : cpu_bytes_in_use();
        const auto t0 = now();
        auto y = mods[k]->forward(xi);
        backend::synchronize(o.device);
        const auto t1 = now();
        const int64_t held = (cuda ? cuda::memory_allocated() : cpu_bytes_in_use()) - before;
        y.backward(grad);
        backend::synchronize(o.device);
        const auto t2 = now();
        if (rep >= o.warmup) {
          samples[k].fwd_ms.push_back(ms(t0, t1));
          samples[k].bwd_ms.push_back(ms(t1, t2));
          samples[k].bytes.push_back(held);
        }
      }
    }
    nlohmann::json profiles;
    if (o.profile > 0) {
      const char* names[kMaxMods] = {conv ? "batchnorm2d" : "layernorm", "bcn", "bcn_op_chain",
                                     "bcn_whole_map", "cwo_affine", "cwo_affine_op_chain"};
      for (int k = 0; k < kMods; ++k) {
        const auto p = analysis::profile_calls(
            [&] { mods[k]->forward(x.detach().requires_grad_(true)).backward(grad); },
            o.profile, o.device);
        profiles[names[k]] = analysis::profile_json(p, 12);
      }
    }
    auto med_bytes = [](std::vector<int64_t> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? int64_t{0} : v[v.size() / 2];
    };
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    double f[kMaxMods], b[kMaxMods], m[kMaxMods];
    auto entry = [&](const double* v) {
      nlohmann::json e{{"baseline", v[0]},
                       {"bcn", v[1]},
                       {"bcn_op_chain", v[2]},
                       {"ratio", ratio(v[1], v[0])},
                       {"op_chain_ratio", ratio(v[2], v[0])}};
      if (conv) {
        e["bcn_whole_map"] = v[3];
        e["whole_map_ratio"] = ratio(v[3], v[0]);
        e["cwo_affine"] = v[4];
        e["cwo_affine_ratio"] = ratio(v[4], v[0]);
        e["cwo_affine_op_chain"] = v[5];
        e["cwo_affine_op_chain_ratio"] = ratio(v[5], v[0]);
      }
      return e;
    };
    for (int k = 0; k < kMods; ++k) {
      f[k] = median(samples[k].fwd_ms);
      b[k] = median(samples[k].bwd_ms);
      m[k] = static_cast<double>(med_bytes(samples[k].bytes));
    }
    // The floor from bytes moved, in units of the tensor's size T. LayerNorm: forward reads
    // x and writes y (2T), backward reads dy and x and writes dx (3T), each row finished
    // while it is in cache. BCN's magnitude statistics span many vectors, so each direction
    // takes one more pass: forward + a reduction read of x (3T), backward + a reduction read
    // of dy and x (5T). BatchNorm has the same two-pass structure as BCN (3T, 5T).
    const double tensor_bytes = static_cast<double>(x.numel() * x.element_size());
    const double base_fwd = conv ? 3 : 2, base_bwd = conv ? 5 : 3;
    out.push_back({
        {"shape", shape_s},
        {"baseline", conv ? "batchnorm2d" : "layernorm"},
        {"dtype", o.bf16 && cuda ? "bf16" : "fp32"},
        {"forward_ms", entry(f)},
        {"backward_ms", entry(b)},
        {"forward_memory_bytes", entry(m)},
        {"tensor_bytes", tensor_bytes},
        {"bytes_moved_floor",
         {{"baseline_forward", base_fwd * tensor_bytes},
          {"bcn_forward", 3 * tensor_bytes},
          {"baseline_backward", base_bwd * tensor_bytes},
          {"bcn_backward", 5 * tensor_bytes},
          {"forward_ratio", 3 / base_fwd},
          {"backward_ratio", 5 / base_bwd}}},
    });
    if (!profiles.is_null()) out.back()["profile"] = profiles;
  }
  return out;
}

}  // namespace normexp::experiments
