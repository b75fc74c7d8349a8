// Akbar §8 Experiment 1: a linear classifier on 2-D separable data, with and without BN.
// The paper describes its synthetic setups in words only; every choice made here is an
// option with the reason in its help line (lib/experiments/geometry.h).
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/weights.h"
#include "backend/torch_compat.h"
#include "core/gnuplot.h"
#include "experiments/dense_net.h"

namespace normexp::experiments {

using namespace config;
using namespace dense;
using nlohmann::json;

namespace {

double angle_deg(double x, double y) {
  return std::atan2(y, x) * 180.0 / kPi;
}

double angle_between_deg(double a, double b) {
  double d = std::fmod(std::abs(a - b), 360.0);
  return d > 180 ? 360 - d : d;
}

}  // namespace

std::vector<OptionSpec> gd_linear_options() {
  return {
      opt_int("points", 200, "training points (Akbar gives no number)", at_least(4)),
      opt_float("margin", 0.25,
                "points closer than this to the true boundary are dropped (separable data)",
                at_least(0)),
      opt_float("angle_star", 30.0, "direction of the true separator w*, degrees"),
      opt_float_list("init_norms", {0.1, 1.0, 10.0},
                     "initial ‖w‖ (§8 Exp. 1: 'varying norms'; small, unit, large)",
                     greater_than(0)),
      opt_float_list("init_angles", {45.0, 90.0, 135.0},
                     "initial angle of w from w*, degrees (§5.2: 90 degrees from the optimum)"),
      opt_float("lr", 0.1, "gradient-descent learning rate (same for both arms)", greater_than(0)),
      opt_int("iterations", 1000, "full-batch gradient-descent steps", at_least(1)),
      opt_int("record_every", 5, "trajectory sampling interval (iterations)", at_least(1)),
      opt_float("eps", 1e-5, "BN epsilon (PyTorch's default)", greater_than(0)),
      opt_int("data_seed", 0, "seed of the data", at_least(0)),
  };
}

TaskResult gd_linear(TaskContext& ctx) {
  const Params& p = ctx.task();
  const int64_t n = p.get_int("points"), iters = p.get_int("iterations");
  const int64_t every = p.get_int("record_every");
  const double lr = p.get_float("lr"), eps = p.get_float("eps");
  const double star = p.get_float("angle_star") * kPi / 180;
  auto gen = compat::cpu_generator(static_cast<uint64_t>(p.get_int("data_seed")));

  // Separable 2-D data: isotropic Gaussian points labelled by w*, the band |w*·x| < margin
  // removed (rejection sampling in rounds until there are enough).
  auto w_star = torch::tensor({std::cos(star), std::sin(star)}, f64());
  std::vector<torch::Tensor> kept;
  int64_t have = 0;
  while (have < n) {
    auto x = randn(gen, {4 * n, 2});
    auto s = x.matmul(w_star);
    auto k = x.index({s.abs() >= p.get_float("margin")});
    kept.push_back(k);
    have += k.size(0);
  }
  auto x = torch::cat(kept).slice(0, 0, n);
  auto y = torch::sign(x.matmul(w_star));

  TaskResult result;
  json& R = result.results;
  std::string dat;
  int block = 0;
  std::vector<gnuplot::Curve> traj_curves, norm_curves;
  for (const char* arm : kArms) {
    const bool bn = std::string(arm) == "bn";
    json runs = json::array();
    double max_change = 0, sum_angle = 0, min_acc = 1;
    json by_norm = json::object();
    for (double r0 : p.get_float_list("init_norms")) {
      // Per initial norm (keys without dots: 0.1 -> "init_1e-01"): the claim depends on it.
      const std::string norm_key = fmt::format("init_{:.0e}", r0);
      double norm_change = 0;
      for (double a0 : p.get_float_list("init_angles")) {
        if (ctx.stop_requested()) return {TaskStatus::Interrupted, R};
        const double th = star + a0 * kPi / 180;
        auto w = torch::tensor({r0 * std::cos(th), r0 * std::sin(th)}, f64()).requires_grad_();
        auto b = torch::zeros({}, f64()).requires_grad_();
        auto gamma = torch::ones({}, f64()).requires_grad_();
        auto beta = torch::zeros({}, f64()).requires_grad_();
        std::vector<torch::Tensor> params =
            bn ? std::vector<torch::Tensor>{w, gamma, beta} : std::vector<torch::Tensor>{w, b};
        auto forward = [&] {
          auto z = x.matmul(w);
          if (!bn) return z + b;
          // §8 Exp. 1: "for this single-layer, BN just normalizes the dot product w·x".
          auto zn = (z - z.mean()) / torch::sqrt(z.var(false) + eps);
          return gamma * zn + beta;
        };
        analysis::WeightTracker tracker;
        tracker.add("w", w, /*trajectory=*/true);
        std::vector<double> losses;
        double loss_v = 0;
        for (int64_t it = 0; it <= iters; ++it) {
          auto loss = logistic_loss(forward(), y);
          loss_v = loss.item<double>();
          if (it % every == 0 || it == iters) {
            tracker.record(it);
            losses.push_back(loss_v);
          }
          if (it == iters || !finite(loss_v)) break;
          loss.backward();
          gd_step(params, lr);
        }
        const double acc = accuracy_pm1(forward(), y);
        // With BN the classifier's direction is sign(γ)·w: a negative γ flips it.
        auto wd = bn && gamma.item<double>() < 0 ? -w.detach() : w.detach();
        const double ang = angle_between_deg(angle_deg(wd[0].item<double>(), wd[1].item<double>()),
                                             p.get_float("angle_star"));
        const double change = 100 * tracker.max_relative_change("w");
        max_change = std::max(max_change, change);
        norm_change = std::max(norm_change, change);
        sum_angle += ang;
        min_acc = std::min(min_acc, acc);
        runs.push_back({{"init_norm", r0},
                        {"init_angle", a0},
                        {"final_norm", tracker.norms("w").back()},
                        {"max_norm_change_pct", change},
                        {"final_angle_deg", ang},
                        {"final_loss", loss_v},
                        {"train_acc", acc}});
        // Trajectory block: iteration, w1, w2, ‖w‖, then the loss.
        const std::string title = fmt::format("{} |w0|={:g} {:g}deg", arm, r0, a0);
        dat += "# " + title + "\n# iteration w1 w2 norm loss\n";
        const auto table = tracker.trajectory_table("w");
        size_t row = 0, pos = table.find('\n') + 1;  // skip the tracker's header
        while (pos < table.size()) {
          const size_t end = table.find('\n', pos);
          dat += table.substr(pos, end - pos) + fmt::format(" {:.9g}\n", losses[row++]);
          pos = end + 1;
        }
        dat += "\n\n";
        traj_curves.push_back({block, title, "2:3"});
        norm_curves.push_back({block, title, "1:4"});
        ++block;
      }
      by_norm[norm_key] = norm_change;
    }
    const double count = static_cast<double>(runs.size());
    R[arm] = {{"max_norm_change_pct", max_change},
              {"max_norm_change_pct_by_init", by_norm},
              {"mean_final_angle_deg", sum_angle / count},
              {"min_train_acc", min_acc},
              {"runs", runs}};
    spdlog::info(
        "gd_linear {}: max |Δ‖w‖|/‖w0‖ {:.3g}%, mean final angle to w* {:.3g} deg, "
        "min train acc {:.3f}",
        arm, max_change, sum_angle / count, min_acc);
  }
  ctx.write_file("gd_linear.dat", dat);
  std::string gp = gnuplot::header("gd_linear");
  gp += gnuplot::figure("gd_linear_trajectories", "Exp. 1: weight trajectories w(t)", "w1", "w2",
                "gd_linear.dat", traj_curves, "set size ratio -1\n");
  gp += gnuplot::figure("gd_linear_norms", "Exp. 1: ||w|| over iterations", "iteration", "||w||",
                "gd_linear.dat", norm_curves, "set logscale y\n");
  ctx.write_file("gd_linear.gp", gp);
  return result;
}

}  // namespace normexp::experiments
