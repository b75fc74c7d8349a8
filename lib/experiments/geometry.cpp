// File 002 (Akbar), §8 Experiments 1-4 and Table 1. The paper describes its synthetic setups
// in words only (no sizes beyond "50-D", "50-20-1", "10 hidden units", "5 layers", no
// learning rates, no iteration counts); every choice made here is an option with the
// reason in its help line, and README says which of the paper's claims hold.
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/hvp.h"
#include "analysis/margins.h"
#include "analysis/symmetry.h"
#include "analysis/weights.h"
#include "core/torch_compat.h"

namespace normexp::experiments {

using namespace config;
using nlohmann::json;

namespace {

constexpr double kPi = 3.14159265358979323846;
const char* const kArms[] = {"bn", "plain"};

torch::TensorOptions f64() {
  return torch::TensorOptions().dtype(torch::kDouble);
}

torch::Tensor randn(at::Generator& gen, std::vector<int64_t> shape) {
  return torch::randn(shape, gen, f64());
}

// One full-batch gradient-descent step; gradients are zeroed for the next one.
void gd_step(const std::vector<torch::Tensor>& params, double lr) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.sub_(lr * p.grad());
    p.grad().zero_();
  }
}

torch::Tensor logistic_loss(const torch::Tensor& f, const torch::Tensor& y) {
  return torch::nn::functional::softplus(-y * f).mean();
}

double accuracy_pm1(const torch::Tensor& f, const torch::Tensor& y) {
  return (f.detach() * y).gt(0).to(torch::kDouble).mean().item<double>();
}

bool finite(double v) {
  return std::isfinite(v);
}

json nullable(std::optional<double> v) {
  return v ? json(*v) : json(nullptr);
}
json nullable(std::optional<int64_t> v) {
  return v ? json(*v) : json(nullptr);
}

enum class Norm { None, Bn, Ln, Wn };

// A fully connected ReLU network in float64, functional so that the symmetry checks and the
// Hessian see exactly the parameters the paper's statements are about. Hidden layers are
// linear -> [norm] -> ReLU, the last layer linear. BN uses the statistics of the batch it
// is given in training mode (full batch here) and those of the last training forward in
// eval mode; LN normalizes each sample over the layer's units; WN reparameterizes every
// weight row as w_i = g_i v_i/‖v_i‖ (w holds v). γ, β: BN/LN affine, one per unit.
struct DenseNet {
  Norm norm = Norm::None;
  double eps = 1e-5;
  std::vector<torch::Tensor> w, b, gamma, beta, g, mean, var;

  size_t layers() const { return w.size(); }

  torch::Tensor weight(size_t l) const {
    if (norm != Norm::Wn) return w[l];
    return g[l].unsqueeze(1) * w[l] / w[l].norm(2, {1}, /*keepdim=*/true);
  }

  // (N, out) outputs.
  torch::Tensor forward(const torch::Tensor& x, bool train) {
    auto h = x;
    for (size_t l = 0; l < layers(); ++l) {
      auto z = h.matmul(weight(l).t());
      if (b[l].defined()) z = z + b[l];
      if (l + 1 == layers()) return z;
      if (norm == Norm::Bn) {
        torch::Tensor mu, v;
        if (train) {
          mu = z.mean(0);
          v = z.var(0, /*unbiased=*/false);
          mean[l] = mu.detach();
          var[l] = v.detach();
        } else {
          mu = mean[l];
          v = var[l];
        }
        z = (z - mu) / torch::sqrt(v + eps) * gamma[l] + beta[l];
      } else if (norm == Norm::Ln) {
        auto mu = z.mean(1, true);
        auto v = z.var(1, /*unbiased=*/false, /*keepdim=*/true);
        z = (z - mu) / torch::sqrt(v + eps) * gamma[l] + beta[l];
      }
      h = torch::relu(z);
    }
    return h;
  }

  torch::Tensor out1(const torch::Tensor& x, bool train) { return forward(x, train).reshape({-1}); }

  std::vector<torch::Tensor> params() const {
    std::vector<torch::Tensor> out;
    for (const auto* list : {&w, &b, &gamma, &beta, &g})
      for (const auto& t : *list)
        if (t.defined()) out.push_back(t);
    return out;
  }
};

// He-normal weights (std sqrt(2/fan_in); the linear output layer sqrt(1/fan_in)) times
// `scale`, zero biases, γ = 1, β = 0. Hidden layers of BN/LN nets have a bias only with
// `bias_before_norm` (file 002 Exp. 2: "no biases in those layers").
DenseNet make_dense(const std::vector<int64_t>& sizes, Norm norm, bool bias_before_norm,
                    double scale, double eps, at::Generator& gen) {
  DenseNet net;
  net.norm = norm;
  net.eps = eps;
  const size_t L = sizes.size() - 1;
  for (size_t l = 0; l < L; ++l) {
    const bool hidden = l + 1 < L;
    const int64_t in = sizes[l], out = sizes[l + 1];
    const double std = scale * std::sqrt((hidden ? 2.0 : 1.0) / static_cast<double>(in));
    net.w.push_back((randn(gen, {out, in}) * std).requires_grad_());
    const bool normed = hidden && (norm == Norm::Bn || norm == Norm::Ln);
    net.b.push_back(normed && !bias_before_norm ? torch::Tensor()
                                                : torch::zeros({out}, f64()).requires_grad_());
    net.gamma.push_back(normed ? torch::ones({out}, f64()).requires_grad_() : torch::Tensor());
    net.beta.push_back(normed ? torch::zeros({out}, f64()).requires_grad_() : torch::Tensor());
    net.g.push_back(norm == Norm::Wn ? net.w.back().detach().norm(2, {1}).requires_grad_()
                                     : torch::Tensor());
    net.mean.emplace_back();
    net.var.emplace_back();
  }
  return net;
}

// Targets of a random one-hidden-layer teacher (so that a linear model cannot fit them).
torch::Tensor teacher(const torch::Tensor& x, int64_t hidden, bool relu, at::Generator& gen) {
  const int64_t d = x.size(1);
  auto u = randn(gen, {hidden, d}) / std::sqrt(static_cast<double>(d));
  auto a = randn(gen, {hidden});
  auto h = x.matmul(u.t());
  h = relu ? torch::relu(h) : torch::tanh(h);
  return h.matmul(a);
}

// Binary labels in {-1, +1}: the teacher's output thresholded at its median (balanced).
torch::Tensor teacher_labels(const torch::Tensor& x, int64_t hidden, at::Generator& gen) {
  auto t = teacher(x, hidden, /*relu=*/true, gen);
  return torch::where(t > t.median(), torch::ones_like(t), -torch::ones_like(t));
}

// ---- gnuplot scripts beside the data (rendered with `gnuplot NAME.gp` in the run dir) ----

struct Curve {
  int index;  // gnuplot data block
  std::string title;
  std::string using_;  // e.g. "1:2"
};

std::string gp_header(const std::string& name) {
  return fmt::format(
      "# gnuplot script written by normexp ({}); render with `gnuplot {}.gp` in this folder\n"
      "set grid\nset key outside right box opaque\n",
      name, name);
}

std::string gp_plot(const std::string& out, const std::string& title, const std::string& xlabel,
                    const std::string& ylabel, const std::string& dat,
                    const std::vector<Curve>& curves, const std::string& settings = "",
                    const std::string& style = "lines") {
  std::string plot = "plot ";
  for (size_t i = 0; i < curves.size(); ++i)
    plot += fmt::format("{}\"{}\" index {} using {} with {} title \"{}\"", i ? ", \\\n     " : "",
                        dat, curves[i].index, curves[i].using_, style, curves[i].title);
  return fmt::format(
      "reset\nset grid\nset key outside right box opaque\n{}set title \"{}\" noenhanced\n"
      "set xlabel \"{}\" noenhanced\nset ylabel \"{}\" noenhanced\n"
      "set terminal svg size 900,540 dynamic noenhanced\nset output \"{}.svg\"\n{}\n"
      "set terminal png size 900,540 noenhanced\nset output \"{}.png\"\nreplot\nunset output\n",
      settings, title, xlabel, ylabel, out, plot, out);
}

// ============================== Experiment 1 ==============================

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
      opt_int("points", 200, "training points (file 002 gives no number)", at_least(4)),
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
  std::vector<Curve> traj_curves, norm_curves;
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
  std::string gp = gp_header("gd_linear");
  gp += gp_plot("gd_linear_trajectories", "Exp. 1: weight trajectories w(t)", "w1", "w2",
                "gd_linear.dat", traj_curves, "set size ratio -1\n");
  gp += gp_plot("gd_linear_norms", "Exp. 1: ||w|| over iterations", "iteration", "||w||",
                "gd_linear.dat", norm_curves, "set logscale y\n");
  ctx.write_file("gd_linear.gp", gp);
  return result;
}

// ============================== Experiment 2 ==============================

std::vector<OptionSpec> hessian_mlp_options() {
  return {
      opt_int("inputs", 10, "input dimension (file 002 gives none)", at_least(1)),
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
  std::string gp = gp_header("hessian_mlp");
  gp += gp_plot("hessian_loss", "Exp. 2: training loss (MSE)", "iteration", "MSE",
                "hessian_loss.dat", {{0, "BN", "1:2"}, {0, "no BN", "1:3"}}, "set logscale y\n");
  gp += gp_plot("hessian_grad_norm", "Exp. 2: gradient norm", "iteration", "||grad||",
                "hessian_loss.dat", {{0, "BN", "1:4"}, {0, "no BN", "1:5"}}, "set logscale y\n");
  gp += gp_plot("hessian_spectrum", "Exp. 2: |Hessian eigenvalues| at the end", "rank",
                "|eigenvalue|", "hessian_spectrum.dat",
                {{0, "BN", "1:(abs($2))"}, {1, "no BN", "1:(abs($2))"}}, "set logscale y\n",
                "points");
  ctx.write_file("hessian_mlp.gp", gp);
  return result;
}

// ============================== Experiment 3 ==============================

std::vector<OptionSpec> margin_mlp_options() {
  return {
      opt_int("inputs", 50, "input dimension (§8 Exp. 3: R^50)", at_least(1)),
      opt_int("hidden", 20, "hidden units (§8 Exp. 3: 50-20-1)", at_least(1)),
      opt_int("train", 500, "training points (file 002 gives no number)", at_least(2)),
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
  std::string gp = gp_header("margin_mlp");
  gp += gp_plot("margin_hist", "Exp. 3: training margins f(x)y", "margin", "count",
                "margin_hist.dat", {{0, "BN", "1:2"}, {0, "no BN", "1:3"}},
                "set style fill transparent solid 0.4\n", "boxes");
  gp += gp_plot("margin_noise", "Exp. 3: training accuracy under parameter noise", "noise std",
                "training accuracy", "margin_noise.dat",
                {{0, "BN", "1:2:3"}, {0, "no BN", "1:4:5"}}, "set logscale x\n", "yerrorlines");
  ctx.write_file("margin_mlp.gp", gp);
  return result;
}

// ============================== Experiment 4 ==============================

std::vector<OptionSpec> bad_init_options() {
  return {
      opt_int("inputs", 20, "input dimension (file 002 gives none)", at_least(1)),
      opt_int("width", 32, "hidden units per layer (§8 Exp. 4: 'fairly small width')", at_least(1)),
      opt_int("layers", 5, "weight layers (§8 Exp. 4: 5); BN after each hidden one", at_least(2)),
      opt_int("samples", 512, "training points", at_least(2)),
      opt_int("teacher_hidden", 8, "hidden ReLU units of the labelling teacher", at_least(1)),
      opt_float_list("init_scales", {0.01, 1.0, 100.0},
                     "multipliers of the He-normal init std of every layer (§8 Exp. 4: 'all "
                     "weights very large or very small'; 1 is the control)",
                     greater_than(0)),
      opt_float("lr", 0.05, "learning rate of every run", greater_than(0)),
      opt_string("loss", "logistic",
                 "logistic (its gradient in f is bounded by 1, so huge outputs saturate rather "
                 "than overflow) or mse on the ±1 labels (gradients grow with the output)",
                 {"logistic", "mse"}),
      opt_int("iterations", 2000, "full-batch gradient-descent steps", at_least(1)),
      opt_float("target_acc", 0.9, "'trains' = reaches this training accuracy", between(0, 1)),
      opt_int("record_every", 10, "loss-curve sampling interval", at_least(1)),
      opt_float("eps", 1e-5, "BN epsilon", greater_than(0)),
      opt_int("data_seed", 0, "seed of the data", at_least(0)),
  };
}

TaskResult bad_init(TaskContext& ctx) {
  const Params& p = ctx.task();
  const int64_t d = p.get_int("inputs"), iters = p.get_int("iterations");
  const int64_t every = p.get_int("record_every");
  const bool mse = p.get_string("loss") == "mse";
  auto dgen = compat::cpu_generator(static_cast<uint64_t>(p.get_int("data_seed")));
  auto x = randn(dgen, {p.get_int("samples"), d});
  auto y = teacher_labels(x, p.get_int("teacher_hidden"), dgen);
  std::vector<int64_t> sizes{d};
  for (int64_t l = 0; l + 1 < p.get_int("layers"); ++l) sizes.push_back(p.get_int("width"));
  sizes.push_back(1);

  TaskResult result;
  json& R = result.results;
  std::string dat;
  std::vector<Curve> loss_curves, acc_curves;
  int block = 0;
  for (const char* arm : kArms) {
    const bool bn = std::string(arm) == "bn";
    int trained = 0, nonfinite_runs = 0;
    for (double scale : p.get_float_list("init_scales")) {
      auto gen = compat::cpu_generator(static_cast<uint64_t>(ctx.exp.seed));
      DenseNet net =
          make_dense(sizes, bn ? Norm::Bn : Norm::None, false, scale, p.get_float("eps"), gen);
      const auto params = net.params();
      std::optional<int64_t> nonfinite, reached;
      double loss_v = 0, acc = 0;
      const std::string title = fmt::format("{} scale {:g}", arm, scale);
      dat += "# " + title + "\n# iteration loss train_acc\n";
      for (int64_t it = 0; it <= iters; ++it) {
        auto f = net.out1(x, true);
        auto loss = mse ? (f - y).pow(2).mean() : logistic_loss(f, y);
        loss_v = loss.item<double>();
        acc = accuracy_pm1(f, y);
        if (it % every == 0 || it == iters || !finite(loss_v))
          dat += fmt::format("{} {:.9g} {:.6g}\n", it, loss_v, acc);
        if (!finite(loss_v)) {  // NaN/inf: the run is over
          nonfinite = it;
          break;
        }
        if (!reached && acc >= p.get_float("target_acc")) reached = it;
        if (it == iters) break;
        loss.backward();
        gd_step(params, p.get_float("lr"));
        if (ctx.stop_requested()) return {TaskStatus::Interrupted, R};
      }
      dat += "\n\n";
      loss_curves.push_back({block, title, "1:2"});
      acc_curves.push_back({block, title, "1:3"});
      ++block;
      // Keys without dots (report metric paths are dotted): scale 0.01 -> "scale_1e-02".
      const std::string key = fmt::format("scale_{:.0e}", scale);
      R[arm][key] = {{"init_scale", scale},
                     {"nonfinite_iteration", nullable(nonfinite)},
                     {"iterations_to_target", nullable(reached)},
                     {"trained", reached ? 1 : 0},
                     {"final_loss", nonfinite ? json(nullptr) : json(loss_v)},
                     {"final_train_acc", nonfinite ? json(nullptr) : json(100 * acc)}};
      trained += reached ? 1 : 0;
      nonfinite_runs += nonfinite ? 1 : 0;
      spdlog::info("bad_init {} scale {:g}: {}; reached {:.0f}% at {}; final loss {:.4g}", arm,
                   scale, nonfinite ? fmt::format("non-finite at {}", *nonfinite) : "finite",
                   100 * p.get_float("target_acc"), reached ? std::to_string(*reached) : "never",
                   loss_v);
    }
    R[arm]["runs_trained"] = trained;
    R[arm]["runs_nonfinite"] = nonfinite_runs;
  }
  ctx.write_file("bad_init.dat", dat);
  std::string gp = gp_header("bad_init");
  gp += gp_plot("bad_init_loss", "Exp. 4: training loss from bad initializations", "iteration",
                "training loss", "bad_init.dat", loss_curves, "set logscale y\n");
  gp += gp_plot("bad_init_acc", "Exp. 4: training accuracy", "iteration", "training accuracy",
                "bad_init.dat", acc_curves);
  ctx.write_file("bad_init.gp", gp);
  return result;
}

// ============================== Table 1 ==============================

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
