#include "experiments/overhead.h"

#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>

#include "nn/bcn.h"
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
    torch::nn::AnyModule bcn{nn::Bcn(bo)};
    base.ptr()->to(o.device, dtype);
    bcn.ptr()->to(o.device, dtype);
    auto x = torch::randn(shape, torch::TensorOptions().device(o.device).dtype(dtype));
    auto grad = torch::randn_like(x);
    Sample samples[2];
    torch::nn::AnyModule* mods[2] = {&base, &bcn};
    auto now = [] { return std::chrono::steady_clock::now(); };
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    for (int64_t rep = 0; rep < o.warmup + o.repeats; ++rep) {
      for (int k = 0; k < 2; ++k) {
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
    auto med_bytes = [](std::vector<int64_t> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? int64_t{0} : v[v.size() / 2];
    };
    const double f0 = median(samples[0].fwd_ms), f1 = median(samples[1].fwd_ms);
    const double b0 = median(samples[0].bwd_ms), b1 = median(samples[1].bwd_ms);
    const int64_t m0 = med_bytes(samples[0].bytes), m1 = med_bytes(samples[1].bytes);
    out.push_back({
        {"shape", shape_s},
        {"baseline", conv ? "batchnorm2d" : "layernorm"},
        {"dtype", o.bf16 && cuda ? "bf16" : "fp32"},
        {"forward_ms", {{"baseline", f0}, {"bcn", f1}, {"ratio", f0 > 0 ? f1 / f0 : 0.0}}},
        {"backward_ms", {{"baseline", b0}, {"bcn", b1}, {"ratio", b0 > 0 ? b1 / b0 : 0.0}}},
        {"forward_memory_bytes",
         {{"baseline", m0}, {"bcn", m1}, {"ratio", m0 > 0 ? static_cast<double>(m1) / m0 : 0.0}}},
    });
  }
  return out;
}

}  // namespace normexp::experiments
