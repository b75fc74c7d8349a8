// Akbar §8 Experiment 4: a 5-layer ReLU net from tiny and huge initial weights, with and without BN.
// The paper describes its synthetic setups in words only; every choice made here is an
// option with the reason in its help line (lib/experiments/geometry.h).
#include "experiments/geometry.h"

#include <torch/torch.h>

#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/torch_compat.h"
#include "core/gnuplot.h"
#include "experiments/dense_net.h"

namespace normexp::experiments {

using namespace config;
using namespace dense;
using nlohmann::json;

std::vector<OptionSpec> bad_init_options() {
  return {
      opt_int("inputs", 20, "input dimension (Akbar gives none)", at_least(1)),
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
  std::vector<gnuplot::Curve> loss_curves, acc_curves;
  int block = 0;
  for (const char* arm : kArms) {
    const bool bn = std::string(arm) == "bn";
    int trained = 0, nonfinite_runs = 0;
    R[arm]["weight_layers"] = sizes.size() - 1;  // make_dense: one weight matrix per pair of sizes
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
  std::string gp = gnuplot::header("bad_init");
  gp += gnuplot::figure("bad_init_loss", "Exp. 4: training loss from bad initializations", "iteration",
                "training loss", "bad_init.dat", loss_curves, "set logscale y\n");
  gp += gnuplot::figure("bad_init_acc", "Exp. 4: training accuracy", "iteration", "training accuracy",
                "bad_init.dat", acc_curves);
  ctx.write_file("bad_init.gp", gp);
  return result;
}

}  // namespace normexp::experiments
