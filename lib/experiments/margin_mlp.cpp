// Akbar §8 Experiment 3: a 50-20-1 MLP with and without BN; margins and parameter noise.
// The paper describes its synthetic setups in words only; every choice made here is an
// option with the reason in its help line (lib/experiments/geometry.h).
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/margins.h"
#include "backend/torch_compat.h"
#include "core/gnuplot.h"
#include "experiments/dense_net.h"

namespace normexp::experiments {

using namespace config;
using namespace dense;
using nlohmann::json;

std::vector<OptionSpec> margin_mlp_options() {
  return {
      opt_int("inputs", 50, "input dimension (§8 Exp. 3: R^50)", at_least(1)),
      opt_int("hidden", 20, "hidden units (§8 Exp. 3: 50-20-1)", at_least(1)),
      opt_int("train", 500, "training points (Akbar gives no number)", at_least(2)),
      opt_int("test", 2000, "test points", at_least(1)),
      opt_int("teacher_hidden", 8,
              "hidden ReLU units of the teacher whose median-thresholded output is the label "
              "(§8: 'not linearly separable but separable with a 2-layer net')",
              at_least(1)),
      opt_float("lr", 0.1, "learning rate of both arms", greater_than(0)),
      opt_int("iterations", 3000,
              "train at least this many full-batch steps (same budget for both arms) ...",
              at_least(1)),
      opt_int("max_iterations", 30000, "... and on until zero training error, at most this many",
              at_least(1)),
      opt_float_list("noise_stds", {0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0},
                     "std of the Gaussian noise added to every parameter (flatness curve)",
                     at_least(0)),
      opt_int("noise_trials", 20, "noise draws per std", at_least(1)),
      opt_float("noise_level", 0.9,
                "noise tolerance = the std at which mean training accuracy falls below this",
                between(0, 1)),
      opt_int("bins", 40, "margin histogram bins", at_least(1)),
      opt_float("eps", 1e-5, "BN epsilon", greater_than(0)),
      opt_int("data_seed", 0, "seed of the data", at_least(0)),
  };
}

TaskResult margin_mlp(TaskContext& ctx) {
  const Params& p = ctx.task();
  const int64_t d = p.get_int("inputs");
  auto dgen = compat::cpu_generator(static_cast<uint64_t>(p.get_int("data_seed")));
  auto x_all = randn(dgen, {p.get_int("train") + p.get_int("test"), d});
  auto y_all = teacher_labels(x_all, p.get_int("teacher_hidden"), dgen);
  auto x = x_all.slice(0, 0, p.get_int("train")), y = y_all.slice(0, 0, p.get_int("train"));
  auto xt = x_all.slice(0, p.get_int("train")), yt = y_all.slice(0, p.get_int("train"));
  const std::vector<int64_t> sizes{d, p.get_int("hidden"), 1};

  TaskResult result;
  json& R = result.results;
  std::vector<torch::Tensor> train_margins(2);
  std::vector<analysis::NoiseCurve> curves(2);
  for (int a = 0; a < 2; ++a) {
    const std::string arm = kArms[a];
    auto gen = compat::cpu_generator(static_cast<uint64_t>(ctx.exp.seed));
    DenseNet net =
        make_dense(sizes, arm == "bn" ? Norm::Bn : Norm::None, false, 1.0, p.get_float("eps"), gen);
    const auto params = net.params();
    std::optional<int64_t> zero_at, nonfinite;
    int64_t it = 0;
    double loss_v = 0;
    for (;; ++it) {
      auto f = net.out1(x, true);
      auto loss = logistic_loss(f, y);
      loss_v = loss.item<double>();
      if (!finite(loss_v)) {
        nonfinite = it;
        break;
      }
      const bool zero = accuracy_pm1(f, y) == 1.0;
      if (zero && !zero_at) zero_at = it;
      if ((it >= p.get_int("iterations") && zero) || it >= p.get_int("max_iterations")) break;
      loss.backward();
      gd_step(params, p.get_float("lr"));
      if (ctx.stop_requested()) return {TaskStatus::Interrupted, R};
    }
    torch::NoGradGuard no_grad;
    // Evaluation: BN with the full-training-set statistics of the last step (eval mode).
    auto f_train = net.out1(x, false), f_test = net.out1(xt, false);
    train_margins[a] = analysis::margins(f_train, y);
    const auto ms = analysis::summarize_margins(train_margins[a]);
    curves[a] = analysis::accuracy_under_noise(
        params, [&] { return accuracy_pm1(net.out1(x, false), y); }, p.get_float_list("noise_stds"),
        p.get_int("noise_trials"), static_cast<uint64_t>(ctx.exp.seed) + 7);
    R[arm] = {{"iterations", it},
              {"zero_error_iteration", nullable(zero_at)},
              {"nonfinite_iteration", nullable(nonfinite)},
              {"final_loss", loss_v},
              {"train_acc", 100 * accuracy_pm1(f_train, y)},
              {"test_acc", 100 * accuracy_pm1(f_test, yt)},
              {"mean_margin", ms.mean},
              {"median_margin", ms.median},
              {"min_margin", ms.min},
              {"margin_std", ms.std},
              {"noise_tolerance", analysis::noise_tolerance(curves[a], p.get_float("noise_level"))},
              {"noise_stds", curves[a].stds},
              {"noise_train_acc", curves[a].mean}};
    spdlog::info(
        "margin_mlp {}: {} steps (zero training error at {}), train {:.1f}% test {:.1f}%, "
        "mean margin {:.3f}, noise tolerance {:.3g}",
        arm, it, zero_at ? std::to_string(*zero_at) : "never", R[arm]["train_acc"].get<double>(),
        R[arm]["test_acc"].get<double>(), ms.mean, R[arm]["noise_tolerance"].get<double>());
  }
  R["margin_ratio"] =
      R["bn"]["mean_margin"].get<double>() / R["plain"]["mean_margin"].get<double>();

  // Histograms on one common range so the two arms can be overlaid.
  const double lo = std::min(
      0.0, std::min(train_margins[0].min().item<double>(), train_margins[1].min().item<double>()));
  const double hi =
      std::max(train_margins[0].max().item<double>(), train_margins[1].max().item<double>());
  const int64_t bins = p.get_int("bins");
  const auto h0 = analysis::histogram(train_margins[0], lo, hi, bins);
  const auto h1 = analysis::histogram(train_margins[1], lo, hi, bins);
  std::string hist = "# bin_center count_bn count_plain (training margins f(x)*y)\n";
  for (int64_t i = 0; i < bins; ++i)
    hist += fmt::format("{:.6g} {} {}\n", (h0.edges[i] + h0.edges[i + 1]) / 2, h0.counts[i],
                        h1.counts[i]);
  ctx.write_file("margin_hist.dat", hist);
  std::string noise = "# std acc_bn acc_bn_sd acc_plain acc_plain_sd (training accuracy)\n";
  for (size_t i = 0; i < curves[0].stds.size(); ++i)
    noise += fmt::format("{:g} {:.6g} {:.6g} {:.6g} {:.6g}\n", curves[0].stds[i], curves[0].mean[i],
                         curves[0].std[i], curves[1].mean[i], curves[1].std[i]);
  ctx.write_file("margin_noise.dat", noise);
  std::string gp = gnuplot::header("margin_mlp");
  gp += gnuplot::figure("margin_hist", "Exp. 3: training margins f(x)y", "margin", "count",
                "margin_hist.dat", {{0, "BN", "1:2"}, {0, "no BN", "1:3"}},
                "set style fill transparent solid 0.4\n", "boxes");
  gp += gnuplot::figure("margin_noise", "Exp. 3: training accuracy under parameter noise", "noise std",
                "training accuracy", "margin_noise.dat",
                {{0, "BN", "1:2:3"}, {0, "no BN", "1:4:5"}}, "set logscale x\n", "yerrorlines");
  ctx.write_file("margin_mlp.gp", gp);
  return result;
}

}  // namespace normexp::experiments
