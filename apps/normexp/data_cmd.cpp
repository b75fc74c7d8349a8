#include "data_cmd.h"

#include <iostream>
#include <memory>
#include <string>

#include "core/error.h"
#include "data/cifar.h"
#include "data/prepare.h"

namespace normexp {

namespace {

struct DataArgs {
  std::string dataset, from, root = "data", md5, url;
};

void print_ready(const data::CifarVariant v, const std::filesystem::path& dir,
                 const std::string& root) {
  std::cout << data::cifar_name(v) << " ready in " << dir.string() << "\n"
            << "use it with  data: {name: " << data::cifar_name(v) << ", root: " << root
            << "}\n";
}

// Runs one data command, turning every error into a message and exit code 1 (the same
// mapping main uses for runtime errors).
template <class F>
int guarded(F&& fn) {
  try {
    fn();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "normexp: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

void add_data_commands(CLI::App& app, int& exit_code) {
  // Shared by the callbacks, which run after main's add_data_commands call has returned.
  auto args = std::make_shared<DataArgs>();
  const auto datasets = CLI::IsMember({"cifar10", "cifar100"});

  auto* data = app.add_subcommand(
      "data", "put a dataset on disk: prepare (from a downloaded archive) or fetch (download it)");
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
}

}  // namespace normexp
