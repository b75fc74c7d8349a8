#include "data_cmd.h"

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "guarded.h"
#include "core/png.h"
#include "data/cifar.h"
#include "data/prepare.h"
#include "compose/components.h"
#include "registry/builtin.h"
#include "train/augment_tools.h"

namespace normexp {

namespace {

struct DataArgs {
  std::string dataset, from, root = "data", md5, url;
  // preview, bench
  std::string config, out = "augment_preview.png", device;
  std::vector<std::string> sets;
  std::optional<int64_t> seed;
  train::PreviewOptions preview;
  std::vector<int64_t> batches{128, 4};
  int64_t iters = 20, steps = 5;
};

config::Experiment load_config(const DataArgs& a) {
  std::vector<std::string> sets = a.sets;
  if (!a.device.empty()) sets.push_back("train.device=" + a.device);
  return config::load_experiment(a.config, sets, registry::experiment_schema(), a.seed);
}

void add_config_options(CLI::App* cmd, DataArgs& a) {
  cmd->add_option("config", a.config, "experiment YAML file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", a.sets, "override a config key (repeatable), as for normexp run")
      ->allow_extra_args(false);
  cmd->add_option("--seed", a.seed, "seed (overrides the config's)");
}

void print_ready(const data::CifarVariant v, const std::filesystem::path& dir,
                 const std::string& root) {
  std::cout << data::cifar_name(v) << " ready in " << dir.string() << "\n"
            << "use it with  data: {name: " << data::cifar_name(v) << ", root: " << root
            << "}\n";
}

}  // namespace

void add_data_commands(CLI::App& app, int& exit_code) {
  // Shared by the callbacks, which run after main's add_data_commands call has returned.
  auto args = std::make_shared<DataArgs>();
  const auto datasets = CLI::IsMember({"cifar10", "cifar100"});

  auto* data = app.add_subcommand(
      "data",
      "put a dataset on disk: prepare (from a downloaded archive) or fetch (download it); "
      "look at the augmentation (preview) and time it (bench)");
  data->require_subcommand(1);

  auto* prepare = data->add_subcommand(
      "prepare",
      "check an official CIFAR binary archive (MD5), extract it into --root and check the files");
  prepare->add_option("dataset", args->dataset, "cifar10 or cifar100")->required()->check(datasets);
  prepare
      ->add_option("--from", args->from,
                   "the archive: cifar-10-binary.tar.gz or cifar-100-binary.tar.gz from "
                   "https://www.cs.toronto.edu/~kriz/cifar.html")
      ->required()
      ->check(CLI::ExistingFile);
  prepare->add_option("--root", args->root, "data root (data.root of the config)")
      ->capture_default_str();
  prepare->add_option("--md5", args->md5, "expected MD5 instead of the official one");
  prepare->callback([args, &exit_code] {
    exit_code = guarded([&] {
      data::PrepareOptions p;
      p.variant = data::cifar_variant(args->dataset);
      p.archive = args->from;
      p.root = args->root;
      p.expected_md5 = args->md5;
      print_ready(p.variant, data::prepare_cifar(p), args->root);
    });
  });

  auto* fetch = data->add_subcommand(
      "fetch", "download the official CIFAR binary archive, then prepare it (needs network)");
  fetch->add_option("dataset", args->dataset, "cifar10 or cifar100")->required()->check(datasets);
  fetch->add_option("--root", args->root, "data root (data.root of the config)")
      ->capture_default_str();
  fetch->add_option("--url", args->url,
                    "download from this mirror instead (the file must match the official MD5)");
  fetch->callback([args, &exit_code] {
    exit_code = guarded([&] {
      data::FetchOptions f;
      f.variant = data::cifar_variant(args->dataset);
      f.root = args->root;
      f.url = args->url;
      print_ready(f.variant, data::fetch_cifar(f), args->root);
    });
  });

  auto* preview = data->add_subcommand(
      "preview",
      "write a PNG grid of augmented training images as the network sees them (before "
      "normalization; Cutout in the mean colour)");
  add_config_options(preview, *args);
  preview->add_option("--out", args->out, "PNG file to write")->capture_default_str();
  preview->add_option("--count", args->preview.count, "number of images")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  preview->add_option("--scale", args->preview.scale, "pixel size in the picture")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  preview->add_flag("--compare", args->preview.compare,
                    "show each original beside its augmentation");
  preview->callback([args, &exit_code] {
    exit_code = guarded([&] {
      const auto img = train::augmentation_preview(load_config(*args), compose::components(), args->preview);
      write_png(args->out, img.pixels, img.width, img.height, img.channels);
      std::cout << fmt::format("wrote {} ({}x{}, {} images)\n", args->out, img.width, img.height,
                               args->preview.count);
    });
  });

  auto* bench = data->add_subcommand(
      "bench",
      "time the training-input pipeline (augmentation, normalization) and one training step of "
      "the config's model at the same batch size, on the configured device (random images)");
  add_config_options(bench, *args);
  bench->add_option("--device", args->device, "auto, cpu or cuda (default: train.device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  bench->add_option("--batch", args->batches, "batch sizes (repeatable)")->capture_default_str();
  bench->add_option("--iters", args->iters, "timed pipeline calls per batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench->add_option("--steps", args->steps, "timed training steps per batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench->callback([args, &exit_code] {
    exit_code = guarded([&] {
      const auto exp = load_config(*args);
      const auto& d = exp.section("data");
      std::cout << fmt::format("# {}: data.augment {}, cutout {}, model {}, norm {}\n",
                               args->config, d.get_string("augment"), d.get_int("cutout"),
                               exp.section("model").get_string("name"),
                               exp.section("norm").get_string("name"));
      std::cout << "| batch | pipeline ms | pipeline images/s | policy ms | train step ms | "
                   "pipeline / step |\n|---|---|---|---|---|---|\n";
      for (const auto& r : train::bench_augmentation(exp, compose::components(), args->batches, args->iters, args->steps))
        std::cout << fmt::format("| {} | {:.3f} | {:.0f} | {:.3f} | {:.2f} | {:.2f}% |\n", r.batch,
                                 r.pipeline_ms, 1000.0 * r.batch / r.pipeline_ms, r.policy_ms,
                                 r.step_ms, 100.0 * r.pipeline_ms / r.step_ms);
    });
  });
}

}  // namespace normexp
