// Akbar §8 Experiment 2: a width-10 MLP regression with and without BN; the Hessian spectrum.
// The paper describes its synthetic setups in words only; every choice made here is an
// option with the reason in its help line (lib/experiments/geometry.h).
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/hvp.h"
#include "backend/torch_compat.h"
#include "core/gnuplot.h"
#include "experiments/dense_net.h"

namespace normexp::experiments {

using namespace config;
using namespace dense;
using nlohmann::json;

std::vector<OptionSpec> hessian_mlp_options() {
  return {
      opt_int("inputs", 10, "input dimension (Akbar gives none)", at_least(1)),
      opt_int("width", 10, "units per hidden layer (§8 Exp. 2: 10)", at_least(1)),
      opt_int("hidden_layers", 3,
              "hidden layers (§8 Exp. 2: 'a tiny 3-layer network, 10 hidden units each'); BN "
              "follows each hidden layer, the output layer is linear",
              at_least(1)),
      opt_int("samples", 256, "training points", at_least(2)),
      opt_int("teacher_hidden", 10, "hidden units of the tanh teacher that makes the targets",
              at_least(1)),
      opt_float("lr", 0.3,
                "learning rate of both arms (§8: 'stable for the BN case but somewhat high for "
                "the no-BN case'; the value is not given)",
                greater_than(0)),
      opt_int("iterations", 3000, "full-batch gradient-descent steps", at_least(1)),
      opt_float("converge_rel", 0.05,
                "converged when the MSE falls below this fraction of the target variance",
                greater_than(0)),
      opt_float("zero_threshold", analysis::kZeroModeThreshold,
                "eigenvalues with |λ| <= this × λ_max are zero modes, left out of the "
                "condition number",
                greater_than(0)),
      opt_int("lanczos_steps", 60, "Lanczos steps for the λ_max cross-check", at_least(1)),
      opt_float("eps", 1e-5, "BN epsilon", greater_than(0)),
      opt_int("data_seed", 0, "seed of the data", at_least(0)),
  };
}

TaskResult hessian_mlp(TaskContext& ctx) {
  const Params& p = ctx.task();
  const int64_t d = p.get_int("inputs"), n = p.get_int("samples"), iters = p.get_int("iterations");
  const double lr = p.get_float("lr");
  auto dgen = compat::cpu_generator(static_cast<uint64_t>(p.get_int("data_seed")));
  auto x = randn(dgen, {n, d});
  auto y = teacher(x, p.get_int("teacher_hidden"), /*relu=*/false, dgen);
  y = (y - y.mean()) / y.std();  // unit target variance: MSE is the unexplained fraction
  std::vector<int64_t> sizes{d};
  for (int64_t l = 0; l < p.get_int("hidden_layers"); ++l) sizes.push_back(p.get_int("width"));
  sizes.push_back(1);

  TaskResult result;
  json& R = result.results;
  std::vector<std::vector<double>> loss_curve(2), grad_curve(2);
  std::string spectrum_dat;
  for (int a = 0; a < 2; ++a) {
    const std::string arm = kArms[a];
    const bool bn = arm == "bn";
    auto gen = compat::cpu_generator(static_cast<uint64_t>(ctx.exp.seed));  // same init draws
    DenseNet net = make_dense(sizes, bn ? Norm::Bn : Norm::None, /*bias_before_norm=*/false, 1.0,
                              p.get_float("eps"), gen);
    const auto params = net.params();
    auto loss_fn = [&] { return (net.out1(x, true) - y).pow(2).mean(); };
    std::optional<int64_t> converged;
    std::optional<int64_t> nonfinite;
    double max_grad = 0;
    for (int64_t it = 0; it <= iters; ++it) {
      auto loss = loss_fn();
      const double l = loss.item<double>();
      loss_curve[a].push_back(l);
      if (!finite(l)) {
        nonfinite = it;
        break;
      }
      if (!converged && l <= p.get_float("converge_rel")) converged = it;
      if (it == iters) break;
      loss.backward();
      double g2 = 0;
      for (const auto& t : params) g2 += t.grad().pow(2).sum().item<double>();
      grad_curve[a].push_back(std::sqrt(g2));
      max_grad = std::max(max_grad, std::sqrt(g2));
      gd_step(params, lr);
      if (ctx.stop_requested()) return {TaskStatus::Interrupted, R};
    }
    json arm_r = {{"iterations_to_converge", nullable(converged)},
                  {"nonfinite_iteration", nullable(nonfinite)},
                  {"final_loss", loss_curve[a].back()},
                  {"max_grad_norm", max_grad},
                  {"parameters", 0}};
    if (!nonfinite) {
      analysis::HessianOperator H(loss_fn, params);
      auto dense = H.dense();
      auto eig = at::linalg_eigvalsh(dense, "L").contiguous();
      std::vector<double> eigs(eig.data_ptr<double>(), eig.data_ptr<double>() + eig.numel());
      const auto s = analysis::summarize_spectrum(eigs, p.get_float("zero_threshold"));
      auto v0 = randn(gen, {H.dim()});
      const auto ritz = analysis::lanczos(H.op(), v0, p.get_int("lanczos_steps"));
      const auto power = analysis::power_iteration(H.op(), v0, 500, 1e-10);
      arm_r["parameters"] = H.dim();
      arm_r["lambda_max"] = s.lambda_max;
      arm_r["lambda_max_lanczos"] = ritz.back();
      arm_r["lambda_max_power"] = power.eigenvalue;
      arm_r["lambda_min_nonzero"] = s.lambda_min_nonzero;
      arm_r["lambda_min"] = s.lambda_min;
      arm_r["condition"] = s.condition;
      arm_r["zero_modes"] = s.zero_modes;
      arm_r["negative_modes"] = s.negative;
      arm_r["zero_threshold_abs"] = s.threshold;
      // The spectrum of a trained net runs continuously down to zero, so the condition number
      // "without zero modes" depends on where zero is drawn: show how much.
      json by_threshold = json::object();
      for (double t : {1e-2, 1e-3, 1e-4, 1e-6})
        by_threshold[fmt::format("rel_{:.0e}", t)] =
            analysis::summarize_spectrum(eigs, t).condition;
      arm_r["condition_by_threshold"] = by_threshold;
      // Gradient descent with step lr is stable only where λ_max < 2/lr; trained nets tend to
      // end near that edge (Cohen et al. 2021), whatever their architecture.
      arm_r["stability_limit"] = 2.0 / lr;
      // Symmetry directions a BN net must have: one scale per normalized unit (§4.1).
      if (bn) arm_r["expected_symmetry_modes"] = (sizes.size() - 2) * p.get_int("width");
      spectrum_dat += fmt::format("# {} Hessian eigenvalues (ascending)\n# rank eigenvalue\n", arm);
      for (size_t i = 0; i < eigs.size(); ++i)
        spectrum_dat += fmt::format("{} {:.12g}\n", i, eigs[i]);
      spectrum_dat += "\n\n";
      spdlog::info(
          "hessian_mlp {}: converged at {}, final MSE {:.4g}, λ_max {:.4g} (Lanczos "
          "{:.4g}, power {:.4g}), κ {:.4g} ({} zero modes of {})",
          arm, converged ? std::to_string(*converged) : "never", loss_curve[a].back(), s.lambda_max,
          ritz.back(), power.eigenvalue, s.condition, s.zero_modes, s.total);
    }
    R[arm] = arm_r;
  }
  if (R["bn"].contains("lambda_max") && R["plain"].contains("lambda_max")) {
    R["lambda_max_ratio"] =
        R["plain"]["lambda_max"].get<double>() / R["bn"]["lambda_max"].get<double>();
    const double cb = R["bn"]["condition"].get<double>();
    if (cb > 0) R["condition_ratio"] = R["plain"]["condition"].get<double>() / cb;
  }
  std::string dat = "# iteration loss_bn loss_plain grad_norm_bn grad_norm_plain\n";
  const size_t rows = std::max(loss_curve[0].size(), loss_curve[1].size());
  auto at = [](const std::vector<double>& v, size_t i) {
    return i < v.size() ? fmt::format("{:.9g}", v[i]) : std::string("NaN");
  };
  for (size_t i = 0; i < rows; ++i)
    dat += fmt::format("{} {} {} {} {}\n", i, at(loss_curve[0], i), at(loss_curve[1], i),
                       at(grad_curve[0], i), at(grad_curve[1], i));
  ctx.write_file("hessian_loss.dat", dat);
  ctx.write_file("hessian_spectrum.dat", spectrum_dat);
  std::string gp = gnuplot::header("hessian_mlp");
  gp += gnuplot::figure("hessian_loss", "Exp. 2: training loss (MSE)", "iteration", "MSE",
                "hessian_loss.dat", {{0, "BN", "1:2"}, {0, "no BN", "1:3"}}, "set logscale y\n");
  gp += gnuplot::figure("hessian_grad_norm", "Exp. 2: gradient norm", "iteration", "||grad||",
                "hessian_loss.dat", {{0, "BN", "1:4"}, {0, "no BN", "1:5"}}, "set logscale y\n");
  gp += gnuplot::figure("hessian_spectrum", "Exp. 2: |Hessian eigenvalues| at the end", "rank",
                "|eigenvalue|", "hessian_spectrum.dat",
                {{0, "BN", "1:(abs($2))"}, {1, "no BN", "1:(abs($2))"}}, "set logscale y\n",
                "points");
  ctx.write_file("hessian_mlp.gp", gp);
  return result;
}

}  // namespace normexp::experiments
