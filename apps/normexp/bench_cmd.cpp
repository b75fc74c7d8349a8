#include "bench_cmd.h"
#include "guarded.h"

#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "analysis/profile.h"
#include "core/fs.h"
#include "backend/torch_info.h"
#include "config/experiment.h"
#include "experiments/overhead.h"
#include "nn/bcn_function.h"
#include "compose/components.h"
#include "registry/builtin.h"
#include "train/bench.h"
#include "backend/device.h"

namespace normexp {

namespace {
struct NormBenchArgs {
  std::string device = "auto", out;
  std::vector<std::string> shapes;
  int64_t repeats = 20, warmup = 3, threads = 0, profile = 0;
  bool bf16 = false;
};

struct TrainBenchArgs {
  std::vector<std::string> configs, sets;
  std::string device, out;
  train::BenchOptions options;
};

void print_train_bench(const nlohmann::json& rows) {
  std::cout << fmt::format("{:<28} {:>6} {:>5} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}\n",
                           "config", "batch", "bf16", "graphs", "img/s", "mean ms", "p50 ms",
                           "p95 ms", "peak MiB", "TFLOP/s", "ratio");
  for (const auto& r : rows) {
    const auto& peak = r["peak_memory_bytes"];
    const std::string graphs =
        r["cuda_graphs"].get<std::string>().rfind("captured", 0) == 0 ? "replay" : "eager";
    std::cout << fmt::format(
        "{:<28} {:>6} {:>5} {:>9} {:>10.1f} {:>8.3f} {:>8.3f} {:>8.3f} {:>9} {:>8.2f} {:>7.3f}\n",
        r["name"].get<std::string>(), r["batch_size"].get<int64_t>(),
        r["bf16"].get<bool>() ? "yes" : "no", graphs, r["images_per_s"].get<double>(),
        r["step_ms"]["mean"].get<double>(), r["step_ms"]["p50"].get<double>(),
        r["step_ms"]["p95"].get<double>(),
        peak.is_null() ? std::string("-") : fmt::format("{:.0f}", peak.get<double>() / 1048576.0),
        r["train_tflop_per_s"].get<double>(), r["relative_to_first"].get<double>());
  }
  if (!rows.empty())
    std::cout << fmt::format("# {} (LibTorch {}); {} timed steps per config; TFLOP/s = 6 x "
                             "forward MACs x images/s\n",
                             rows[0]["device"].get<std::string>(),
                             rows[0]["versions"]["libtorch"].get<std::string>(),
                             rows[0]["steps"].get<int64_t>());
  for (const auto& r : rows)
    if (r.contains("profile"))
      std::cout << fmt::format("\n## {}: {:.3f} ms per step (p50)\n{}", r["name"].get<std::string>(),
                               r["step_ms"]["p50"].get<double>(),
                               analysis::profile_table(r["profile"]));
}
}  // namespace

void add_bench_commands(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand(
      "bench",
      "training-step speed of one or more configs (images/s, step time mean/p50/p95, peak GPU "
      "memory, TFLOP/s; configs interleaved round by round so ratios are side by side), or a "
      "micro-benchmark subcommand");
  bench->require_subcommand(0, 1);
  auto t = std::make_shared<TrainBenchArgs>();
  bench->add_option("config", t->configs,
                    "experiment YAML file(s); synthetic data of the dataset's shape stands in for "
                    "the images, so no dataset is needed")
      ->check(CLI::ExistingFile);
  bench->add_option("--set", t->sets,
                    "override a config key in every config, as in normexp run (repeatable)")
      ->allow_extra_args(false);
  bench->add_option("--device", t->device, "auto, cpu or cuda (gpu: cuda; default: each config's)")
      ->check(CLI::IsMember(backend::device_choices()));
  bench->add_option("--warmup", t->options.warmup,
                    "untimed steps per config first (includes the CUDA graph capture)")
      ->check(CLI::Range(0, 1000000));
  bench->add_option("--steps", t->options.steps, "timed steps per config and round")
      ->check(CLI::Range(1, 1000000));
  bench->add_option("--rounds", t->options.rounds, "rounds over all configs (interleaved)")
      ->check(CLI::Range(1, 10000));
  bench->add_option("--images", t->options.images,
                    "synthetic images resident per config (default: 8 batches)")
      ->check(CLI::Range(0, 100000000));
  bench->add_option("--out", t->out, "also write the JSON (an array, one object per config) here");
  bench->add_option("--profile", t->options.profile,
                    "after timing, profile this many more steps of each config: where a step's "
                    "time goes, kernel by kernel on CUDA (GPU time), op by op on the CPU")
      ->check(CLI::Range(0, 100000));
  bench->add_option("--profile-top", t->options.profile_top, "rows of each profile kept")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  bench->add_option("--trace-dir", t->options.trace_dir,
                    "with --profile: also a chrome trace per config here (Perfetto; needs a "
                    "LibTorch with Kineto, which Debian's lacks)");
  bench->footer(
      "Examples:\n"
      "  normexp bench configs/ikami/table1/cifar100_wrn28_10_bn.yaml --set train.bf16=true \\\n"
      "      --set train.channels_last=true --out wrn_b128.json\n"
      "  normexp bench bn.yaml cwo.yaml --set train.cuda_graphs=on   # cwo vs bn, side by side\n"
      "  normexp bench norms --device cuda                          # Markou §5.5");
  bench->callback([t, bench, &exit_code] {
    if (bench->get_subcommands().size() > 0) return;  // `bench norms` ran its own callback
    if (t->configs.empty())
      throw CLI::ValidationError("config",
                                 "normexp bench needs one or more CONFIG files, or a subcommand "
                                 "(norms); see normexp bench --help");
    exit_code = guarded([&] {
      std::vector<std::string> sets = t->sets;
      if (!t->device.empty()) sets.push_back("train.device=" + t->device);
      std::vector<config::Experiment> exps;
      for (const auto& path : t->configs)
        exps.push_back(
            config::load_experiment(path, sets, registry::experiment_schema(), std::nullopt));
      auto options = t->options;
      // After every round, not only at the end: a bench killed by a deadline (the GPU
      // session's) leaves the rounds it finished.
      if (!t->out.empty())
        options.on_round = [&](const nlohmann::json& rows) {
          write_file_atomic(t->out, rows.dump(2) + "\n");
        };
      const auto rows = train::bench_training(exps, compose::components(), options);
      print_train_bench(rows);
    });
  });
  auto a = std::make_shared<NormBenchArgs>();
  auto* norms = bench->add_subcommand(
      "norms",
      "Markou §5.5: forward time, backward time and forward memory of BCN vs LayerNorm "
      "(token shapes NxTxD) and vs BatchNorm2d (conv maps NxCxHxW), and on conv maps of cwo's "
      "affine + noise layer (fused and as the op chain) vs BatchNorm2d, interleaved in one run");
  norms->add_option("--device", a->device, "auto, cpu or cuda (gpu: cuda)")
      ->check(CLI::IsMember(backend::device_choices()));
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
  norms->add_option("--profile", a->profile,
                    "after timing, profile this many forward + backward calls of each module: "
                    "its kernels (CUDA) or ops (CPU), printed after the table")
      ->check(CLI::Range(0, 100000));
  norms->callback([a, &exit_code] {
    exit_code = guarded([&] {
      torch::set_num_threads(static_cast<int>(
          a->threads > 0 ? a->threads
                         : std::max<int64_t>(1, std::thread::hardware_concurrency())));
      experiments::OverheadOptions o;
      const auto device = backend::device_for(a->device);
      if (!device)
        throw std::runtime_error("--device " + a->device +
                                 ": no CUDA device (or a CPU-only LibTorch)");
      o.device = *device;
      o.shapes = a->shapes;
      o.repeats = a->repeats;
      o.warmup = a->warmup;
      o.bf16 = a->bf16;
      o.profile = a->profile;
      const auto rows = experiments::bench_norm_overhead(o);
      // The fused CPU loops use LibTorch's threads only in a build with OpenMP: say which.
      const int64_t bcn_threads = nn::bcn_fused_cpu_parallel() ? torch::get_num_threads() : 1;
      nlohmann::json j = {{"benchmark", "bcn_overhead"},
                          {"device", backend::describe_device(o.device)},
                          {"libtorch", torch_version()},
                          {"repeats", a->repeats},
                          {"results", rows}};
      if (o.device.is_cpu()) j["bcn_cpu_threads"] = bcn_threads;
      std::cout << fmt::format("BCN overhead on {} (LibTorch {}), median of {} runs\n",
                               backend::describe_device(o.device), torch_version(), a->repeats);
      if (o.device.is_cpu())
        std::cout << fmt::format("fused BCN's CPU loops: {} thread{}{}\n", bcn_threads,
                                 bcn_threads == 1 ? "" : "s",
                                 nn::bcn_fused_cpu_parallel() ? "" : " (built without OpenMP)");
      // Fused BCN (the module's default) and the op chain it replaced, both against the
      // baseline, measured interleaved in this run.
      // For maps, "map" is the whole-map reading (vector: sample, stats: batch) that the
      // paper's ResNet configs train with.
      std::cout << fmt::format(
          "{:<16} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
          "shape", "baseline", "fwd ms", "fwd +%", "chain +%", "map +%", "bwd ms", "bwd +%",
          "chain +%", "map +%", "mem +%", "chain +%", "map +%");
      for (const auto& r : rows) {
        auto pct = [&](const char* metric, const char* key) {
          return r[metric].contains(key) ? (r[metric][key].get<double>() - 1.0) * 100.0
                                         : std::nan("");
        };
        std::cout << fmt::format(
            "{:<16} {:<12} {:>8.3f} {:>+8.1f} {:>+8.1f} {:>+8.1f} {:>8.3f} {:>+8.1f} {:>+8.1f} "
            "{:>+8.1f} {:>+8.1f} {:>+8.1f} {:>+8.1f}\n",
            r["shape"].get<std::string>(), r["baseline"].get<std::string>(),
            r["forward_ms"]["baseline"].get<double>(), pct("forward_ms", "ratio"),
            pct("forward_ms", "op_chain_ratio"), pct("forward_ms", "whole_map_ratio"),
            r["backward_ms"]["baseline"].get<double>(), pct("backward_ms", "ratio"),
            pct("backward_ms", "op_chain_ratio"), pct("backward_ms", "whole_map_ratio"),
            pct("forward_memory_bytes", "ratio"), pct("forward_memory_bytes", "op_chain_ratio"),
            pct("forward_memory_bytes", "whole_map_ratio"));
      }
      // cwo's affine + noise layer where it replaces BatchNorm (maps only).
      bool header = false;
      for (const auto& r : rows) {
        if (!r["forward_ms"].contains("cwo_affine")) continue;
        if (!header)
          std::cout << fmt::format(
              "\ncwo's affine + noise (Ikami et al. 2021 Eq. 7) vs BatchNorm2d: fused (on "
              "BatchNorm's kernels) and the op chain\n{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} "
              "{:>8} {:>8} {:>8}\n",
              "shape", "fwd ms", "fwd +%", "chain +%", "bwd ms", "bwd +%", "chain +%", "mem +%",
              "chain +%");
        header = true;
        auto pct = [&](const char* metric, const char* key) {
          return (r[metric][key].get<double>() - 1.0) * 100.0;
        };
        std::cout << fmt::format(
            "{:<16} {:>8.3f} {:>+8.1f} {:>+8.1f} {:>8.3f} {:>+8.1f} {:>+8.1f} {:>+8.1f} "
            "{:>+8.1f}\n",
            r["shape"].get<std::string>(), r["forward_ms"]["baseline"].get<double>(),
            pct("forward_ms", "cwo_affine_ratio"), pct("forward_ms", "cwo_affine_op_chain_ratio"),
            r["backward_ms"]["baseline"].get<double>(), pct("backward_ms", "cwo_affine_ratio"),
            pct("backward_ms", "cwo_affine_op_chain_ratio"),
            pct("forward_memory_bytes", "cwo_affine_ratio"),
            pct("forward_memory_bytes", "cwo_affine_op_chain_ratio"));
      }
      for (const auto& r : rows)
        if (r.contains("profile"))
          for (const auto& [module, p] : r["profile"].items())
            std::cout << fmt::format("\n## {} {}: forward + backward\n{}",
                                     r["shape"].get<std::string>(), module,
                                     analysis::profile_table(p));
      if (!a->out.empty()) write_file_atomic(a->out, j.dump(2) + "\n");
    });
  });
}

}  // namespace normexp
