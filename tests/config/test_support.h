#pragma once
// Shared by the config tests: a self-cleaning temp directory and a small hand-made schema
// shaped like the real one (components, nested keys, unhashed options).

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "config/experiment.h"

namespace normexp::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("normexp_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
             std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes `text` to `relative` (creating folders) and returns the full path.
  std::filesystem::path write(const std::string& relative, const std::string& text) const {
    const auto p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

inline config::Schema test_schema() {
  using namespace config;
  Schema s;

  SectionSchema data{"data",
                     "dataset",
                     {opt_int("batch_workers", 2, "loader threads", at_least(0))},
                     {{"synthetic", {opt_int("samples", 512, "examples", at_least(1))}},
                      {"cifar10", {unhashed(opt_string("root", "data", "where the files are"))}}},
                     "synthetic"};
  SectionSchema model{"model",
                      "model",
                      {},
                      {{"cnn9", {opt_int("width", 64, "base width", at_least(1))}},
                       {"wrn",
                        {opt_int("depth", 28, "depth", at_least(10)),
                         opt_int("widen", 10, "widening factor", at_least(1))}}},
                      "cnn9"};
  SectionSchema norm{"norm",
                     "norm scheme",
                     {opt_float("noise.sigma", 0.0, "noise std", at_least(0)),
                      opt_string("noise.schedule", "constant", "noise schedule",
                                 {"cosine", "multistep", "constant"})},
                     {{"bn", {opt_float("eps", 1e-5, "epsilon", greater_than(0))}},
                      {"cwo", {opt_int("groups", 16, "groups", at_least(1))}}},
                     "bn"};
  SectionSchema optim{
      "optim",
      "optimizer",
      {opt_float("weight_decay", 5e-4, "L2 penalty", at_least(0))},
      {{"sgd",
        {opt_float("lr", 0.1, "initial learning rate", greater_than(0)),
         opt_float("momentum", 0.9, "momentum", between(0, 1, false, true)),
         opt_bool("nesterov", false, "Nesterov momentum"),
         opt_int_list("milestones", {30, 60}, "epochs where lr drops", at_least(0))}},
       {"adam",
        {opt_float("lr", 1e-3, "initial learning rate", greater_than(0)),
         opt_float_list("betas", {0.9, 0.999}, "moment decay", between(0, 1, false, true))}}},
      "sgd"};
  SectionSchema schedule{"schedule",
                         "schedule",
                         {},
                         {{"cosine", {opt_int("warmup", 0, "warmup epochs", at_least(0))}},
                          {"multistep", {opt_float("gamma", 0.1, "decay factor", greater_than(0))}},
                          {"constant", {}}},
                         "cosine"};
  SectionSchema train{
      "train",
      "",
      {opt_int("epochs", 10, "epochs", at_least(1)),
       opt_int("batch_size", 128, "batch size", at_least(1)),
       unhashed(opt_string("device", "auto", "where to train", {"auto", "cpu", "cuda"}))},
      {},
      ""};
  SectionSchema output{
      "output", "", {unhashed(opt_string("root", "results", "results folder"))}, {}, ""};
  // Deliberately not in section_order() order: written order must not depend on it.
  s.sections = {output, train, schedule, optim, norm, model, data};
  return s;
}

}  // namespace normexp::testing
