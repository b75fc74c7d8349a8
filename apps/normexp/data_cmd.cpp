#include "data_cmd.h"

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/device.h"
#include "core/error.h"
#include "guarded.h"
#include "core/png.h"
#include "data/cifar.h"
#include "data/imagenet_prepare.h"
#include "data/jpeg_bench.h"
#include "data/prepare.h"
#include "compose/components.h"
#include "registry/builtin.h"
#include "train/augment_tools.h"

namespace normexp {

namespace {

struct DataArgs {
  std::string dataset, from, root = "data", md5, url;
  std::string train_tar, val_tar, devkit;  // prepare imagenet
  data::JpegBenchOptions jpeg;             // bench-jpeg
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
      "CIFAR: check an official binary archive (MD5), extract it into --root and check the "
      "files. ImageNet: turn the official archives (--train, --val, --devkit) into "
      "<root>/imagenet/{train,val}/<wnid>/*.JPEG, streaming, checking every image and the "
      "counts; an interrupted run resumes where it stopped");
  prepare->add_option("dataset", args->dataset, "cifar10, cifar100 or imagenet")
      ->required()
      ->check(CLI::IsMember({"cifar10", "cifar100", "imagenet"}));
  prepare
      ->add_option("--from", args->from,
                   "CIFAR: the archive, cifar-10-binary.tar.gz or cifar-100-binary.tar.gz from "
                   "https://www.cs.toronto.edu/~kriz/cifar.html")
      ->check(CLI::ExistingFile);
  prepare->add_option("--train", args->train_tar, "ImageNet: ILSVRC2012_img_train.tar")
      ->check(CLI::ExistingFile);
  prepare->add_option("--val", args->val_tar, "ImageNet: ILSVRC2012_img_val.tar")
      ->check(CLI::ExistingFile);
  prepare->add_option("--devkit", args->devkit,
                      "ImageNet: ILSVRC2012_devkit_t12.tar.gz, or the directory it extracts to")
      ->check(CLI::ExistingPath);
  prepare->add_option("--root", args->root, "data root (data.root of the config)")
      ->capture_default_str();
  prepare->add_option("--md5", args->md5, "CIFAR: expected MD5 instead of the official one");
  prepare->callback([args, &exit_code] {
    exit_code = guarded([&] {
      if (args->dataset == "imagenet") {
        if (args->train_tar.empty() || args->val_tar.empty() || args->devkit.empty())
          throw ConfigError("command line", "--train, --val, --devkit",
                            "data prepare imagenet needs all three (the files of the ILSVRC "
                            "2012 download)");
        data::ImageNetPrepareOptions p;
        p.train_tar = args->train_tar;
        p.val_tar = args->val_tar;
        p.devkit = args->devkit;
        p.root = args->root;
        const auto r = data::prepare_imagenet(p);
        std::cout << fmt::format("imagenet ready in {}: {} training and {} validation images of "
                                 "{} classes ({} PNG converted to JPEG{})\n"
                                 "use it with  data: {{name: imagenet, root: {}}}\n",
                                 r.dir.string(), r.train, r.val, r.classes, r.converted,
                                 r.resumed_classes
                                     ? fmt::format("; {} classes kept from an interrupted run",
                                                   r.resumed_classes)
                                     : "",
                                 r.dir.string());
        return;
      }
      if (args->from.empty())
        throw ConfigError("command line", "--from",
                          fmt::format("data prepare {} needs the archive", args->dataset));
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
  bench->add_option("--device", args->device,
                    "auto, cpu or cuda (gpu: cuda; default: train.device)")
      ->check(CLI::IsMember(backend::device_choices()));
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

  auto* bench_jpeg = data->add_subcommand(
      "bench-jpeg",
      "time the JPEG loader (libjpeg-turbo decoding, random-resized crop or resize + centre "
      "crop, on worker threads) on generated JPEGs of ImageNet's size: images/s per worker "
      "count; compare with `normexp bench` of an ImageNet config for the training step");
  bench_jpeg->add_option("--dir", args->jpeg.dir, "where to write the JPEGs (kept for reuse)")
      ->required();
  bench_jpeg->add_option("--images", args->jpeg.images, "number of JPEGs")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench_jpeg->add_option("--width", args->jpeg.width, "mean width (ImageNet: ~400)")
      ->capture_default_str();
  bench_jpeg->add_option("--height", args->jpeg.height, "mean height (ImageNet: ~350)")
      ->capture_default_str();
  bench_jpeg->add_option("--quality", args->jpeg.quality, "JPEG quality")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  bench_jpeg->add_option("--batch", args->jpeg.batch, "batch size")->capture_default_str();
  bench_jpeg->add_option("--workers", args->jpeg.workers, "worker counts to time (repeatable)")
      ->capture_default_str();
  bench_jpeg->callback([args, &exit_code] {
    exit_code = guarded([&] {
      // Each row as it is timed, flushed: a run cut short by a deadline keeps its rows.
      auto opt = args->jpeg;
      opt.on_row = [](const data::JpegBenchRow& row) {
        std::cout << fmt::format("| {} | {} | {:.0f} | {:.0f} |",
                                 row.train ? "train (random-resized crop + flip)"
                                           : "eval (resize 256 + centre crop)",
                                 row.workers, row.images_per_s, row.images_per_s / row.workers)
                  << std::endl;
      };
      std::cout << "| mode | workers | images/s | images/s per worker |\n|---|---|---|---|"
                << std::endl;
      const auto r = data::bench_jpeg_loader(opt);
      std::cout << fmt::format("# {} JPEGs, mean {:.0f}x{:.0f}, {:.1f} KB, quality {}; batch {}\n",
                               args->jpeg.images, r.mean_width, r.mean_height,
                               r.mean_bytes / 1024, args->jpeg.quality, args->jpeg.batch);
    });
  });
}

}  // namespace normexp
