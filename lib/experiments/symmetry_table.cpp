// Akbar Table 1: the BN, LN and WN symmetries as loss-invariance checks.
// The paper describes its synthetic setups in words only; every choice made here is an
// option with the reason in its help line (lib/experiments/geometry.h).
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>
#include <map>

#include <spdlog/spdlog.h>

#include "analysis/symmetry.h"
#include "backend/torch_compat.h"
#include "experiments/dense_net.h"

namespace normexp::experiments {

using namespace config;
using namespace dense;
using nlohmann::json;

std::vector<OptionSpec> symmetry_options() {
  return {
      opt_int("inputs", 8, "input dimension", at_least(1)),
      opt_int_list("hidden", {16, 16}, "hidden layer widths", at_least(1)),
      opt_int("batch", 64, "batch the loss is evaluated on (BN uses its statistics)", at_least(2)),
      opt_float_list("factors", {0.5, 2.0, 10.0}, "scale factors c (and α) tried", greater_than(0)),
      opt_float("tolerance", 1e-4,
                "largest relative loss change that counts as invariant: BN/LN's eps breaks the "
                "scale symmetry by ~eps/(c²σ²), 2e-5 at c = 0.5 with eps 1e-5",
                greater_than(0)),
      opt_float("eps", 1e-5, "BN/LN epsilon", greater_than(0)),
      opt_int("data_seed", 0, "seed of the data", at_least(0)),
  };
}

TaskResult symmetry(TaskContext& ctx) {
  const Params& p = ctx.task();
  auto dgen = compat::cpu_generator(static_cast<uint64_t>(p.get_int("data_seed")));
  auto x = randn(dgen, {p.get_int("batch"), p.get_int("inputs")});
  auto target = randn(dgen, {p.get_int("batch")});
  std::vector<int64_t> sizes{p.get_int("inputs")};
  for (auto h : p.get_int_list("hidden")) sizes.push_back(h);
  sizes.push_back(1);
  const double eps = p.get_float("eps"), tol = p.get_float("tolerance");
  const auto& factors = p.get_float_list("factors");
  auto gen = compat::cpu_generator(static_cast<uint64_t>(ctx.exp.seed));
  // Biases before the norm are kept: Table 1's BN/LN rows transform (W, b) together.
  std::map<std::string, DenseNet> nets;
  nets.emplace("bn", make_dense(sizes, Norm::Bn, true, 1.0, eps, gen));
  nets.emplace("ln", make_dense(sizes, Norm::Ln, true, 1.0, eps, gen));
  nets.emplace("wn", make_dense(sizes, Norm::Wn, true, 1.0, eps, gen));
  nets.emplace("plain", make_dense(sizes, Norm::None, true, 1.0, eps, gen));
  const size_t hidden_layers = sizes.size() - 2;

  struct Spec {
    std::string name, net, transform, paper;
    bool expected;
  };
  const std::vector<Spec> specs{
      {"bn_neuron", "bn", "(W_i, b_i) -> (cW_i, cb_i), each hidden unit i", "BN row", true},
      {"ln_layer", "ln", "(W, b) -> (cW, cb), each hidden layer", "LN row", true},
      {"wn_direction", "wn", "(v_i, g_i) -> (αv_i, g_i), every row", "WN, corrected", true},
      {"wn_table1", "wn", "(v_i, g_i) -> (αv_i, g_i/α), every row", "WN row as printed", false},
      {"ln_neuron", "ln", "(W_i, b_i) -> (cW_i, cb_i) on an LN net", "control", false},
      {"plain_neuron", "plain", "(W_i, b_i) -> (cW_i, cb_i) without norm", "control", false},
      {"plain_layer", "plain", "(W, b) -> (cW, cb) without norm", "control", false},
  };
  TaskResult result;
  json& R = result.results;
  bool all_as_expected = true;
  for (const auto& s : specs) {
    DenseNet& net = nets.at(s.net);
    const auto params = net.params();
    analysis::LossFn loss = [&] { return (net.out1(x, true) - target).pow(2).mean(); };
    double worst = 0;
    int64_t checks = 0;
    auto run = [&](const std::function<void()>& t) {
      const auto c = analysis::check_symmetry(s.name, loss, params, t, tol);
      worst = std::max(worst, c.rel_change);
      ++checks;
    };
    for (double c : factors) {
      const bool per_layer = s.name == "ln_layer" || s.name == "plain_layer";
      const bool wn = s.net == "wn";
      const size_t layers = wn ? net.layers() : hidden_layers;
      for (size_t l = 0; l < layers; ++l) {
        if (per_layer) {
          run([&] { analysis::scale_layer_(net.w[l], net.b[l], c); });
          continue;
        }
        const int64_t units = net.w[l].size(0);
        for (int64_t i : {int64_t{0}, units / 2, units - 1}) {
          if (s.name == "wn_direction")
            run([&] { analysis::scale_wn_direction_(net.w[l], i, c); });
          else if (s.name == "wn_table1")
            run([&] { analysis::scale_wn_table1_(net.w[l], net.g[l], i, c); });
          else
            run([&] { analysis::scale_neuron_(net.w[l], net.b[l], i, c); });
        }
      }
    }
    const bool invariant = worst <= tol;
    all_as_expected = all_as_expected && invariant == s.expected;
    R["checks"][s.name] = {{"model", s.net},
                           {"transform", s.transform},
                           {"table1", s.paper},
                           {"max_rel_change", worst},
                           {"log10_max_rel_change", std::log10(std::max(worst, 1e-300))},
                           {"checks", checks},
                           {"invariant", invariant ? 1 : 0},
                           {"expected_invariant", s.expected ? 1 : 0}};
    spdlog::info("symmetry {:<13} {:<48} max relative loss change {:.3g} -> {}", s.name,
                 s.transform, worst, invariant ? "invariant" : "NOT invariant");
  }
  R["tolerance"] = tol;
  R["all_as_expected"] = all_as_expected ? 1 : 0;
  return result;
}

}  // namespace normexp::experiments
