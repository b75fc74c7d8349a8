#include "bench_cmd.h"
#include "guarded.h"

#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "core/fs.h"
#include "core/torch_info.h"
#include "experiments/overhead.h"
#include "train/device.h"

namespace normexp {

namespace {
struct NormBenchArgs {
  std::string device = "auto", out;
  std::vector<std::string> shapes;
  int64_t repeats = 20, warmup = 3, threads = 0;
  bool bf16 = false;
};
}  // namespace

void add_bench_commands(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand("bench", "benchmarks (results as JSON, ratios side by side)");
  bench->require_subcommand(1);
  auto a = std::make_shared<NormBenchArgs>();
  auto* norms = bench->add_subcommand(
      "norms",
      "file 000 §5.5: forward time, backward time and forward memory of BCN vs LayerNorm "
      "(token shapes NxTxD) and vs BatchNorm2d (conv maps NxCxHxW), interleaved in one run");
  norms->add_option("--device", a->device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  norms->add_option("--shape", a->shapes,
                    "NxTxD or NxCxHxW (repeatable; default: ViT-B/16, CIFAR-ViT and ResNet-50 "
                    "shapes, smaller batches on CPU)");
  norms->add_option("--repeats", a->repeats, "timed repetitions per module (median reported)")
      ->check(CLI::Range(1, 100000));
  norms->add_option("--warmup", a->warmup, "untimed repetitions first")->check(CLI::Range(0, 1000));
  norms->add_flag("--bf16", a->bf16, "bf16 inputs and parameters (CUDA)");
  norms->add_option("--threads", a->threads, "CPU threads (0: all cores, as normexp run)")
      ->check(CLI::Range(0, 4096));
  norms->add_option("--out", a->out, "also write the JSON here");
  norms->callback([a, &exit_code] {
    exit_code = guarded([&] {
      torch::set_num_threads(static_cast<int>(
          a->threads > 0 ? a->threads
                         : std::max<int64_t>(1, std::thread::hardware_concurrency())));
      experiments::OverheadOptions o;
      const bool cuda = a->device == "cuda" || (a->device == "auto" && torch::cuda::is_available());
      if (cuda && !torch::cuda::is_available())
        throw std::runtime_error("--device cuda: no CUDA device (or a CPU-only LibTorch)");
      o.device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
      o.shapes = a->shapes;
      o.repeats = a->repeats;
      o.warmup = a->warmup;
      o.bf16 = a->bf16;
      const auto rows = experiments::bench_norm_overhead(o);
      nlohmann::json j = {{"benchmark", "bcn_overhead"},
                          {"device", train::describe_device(o.device)},
                          {"libtorch", torch_version()},
                          {"repeats", a->repeats},
                          {"results", rows}};
      std::cout << fmt::format("BCN overhead on {} (LibTorch {}), median of {} runs\n",
                               train::describe_device(o.device), torch_version(), a->repeats);
      std::cout << fmt::format("{:<16} {:<12} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8}\n",
                               "shape", "baseline", "fwd ms", "bcn fwd", "fwd +%", "bwd ms",
                               "bcn bwd", "bwd +%", "mem +%");
      for (const auto& r : rows) {
        auto pct = [](double ratio) { return (ratio - 1.0) * 100.0; };
        std::cout << fmt::format(
            "{:<16} {:<12} {:>10.3f} {:>10.3f} {:>+8.1f} {:>10.3f} {:>10.3f} {:>+8.1f} {:>+8.1f}\n",
            r["shape"].get<std::string>(), r["baseline"].get<std::string>(),
            r["forward_ms"]["baseline"].get<double>(), r["forward_ms"]["bcn"].get<double>(),
            pct(r["forward_ms"]["ratio"].get<double>()), r["backward_ms"]["baseline"].get<double>(),
            r["backward_ms"]["bcn"].get<double>(), pct(r["backward_ms"]["ratio"].get<double>()),
            pct(r["forward_memory_bytes"]["ratio"].get<double>()));
      }
      if (!a->out.empty()) write_file_atomic(a->out, j.dump(2) + "\n");
    });
  });
}

}  // namespace normexp
