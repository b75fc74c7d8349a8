// The Akbar tasks end to end at reduced size through run_experiment (config -> results
// directory), with assertions on what each experiment measures.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "compose/run.h"
#include "support/ml_support.h"

namespace normexp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json run_task(const testing::TempDir& dir, const std::string& task_yaml,
              std::vector<std::string> expect_files) {
  const std::string yaml =
      "name: t\ntask: " + task_yaml +
      "\ntrain: {progress: none, threads: 1}\noutput: {root: " + (dir.path() / "results").string() +
      "}\n";
  auto exp = testing::experiment_from(dir, yaml);
  auto r = compose::run_experiment(exp);
  EXPECT_EQ(r.status, experiments::TaskStatus::Completed);
  auto m = json::parse(read_file(r.dir / "metrics.json"));
  EXPECT_EQ(m["status"], "completed");
  for (const auto& f : expect_files) EXPECT_TRUE(fs::exists(r.dir / f)) << f;
  return m["results"];
}

TEST(Geometry, Exp1BnKeepsTheWeightNormWhilePlainGdChangesIt) {
  testing::TempDir dir;
  auto r = run_task(dir,
                    "{name: gd_linear, points: 60, iterations: 300, init_norms: [1.0, 10.0], "
                    "init_angles: [90.0]}",
                    {"gd_linear.dat", "gd_linear.gp"});
  // Large initial norm: BN's gradient is orthogonal to w and small (∝ 1/‖w‖), so the
  // discrete steps move ‖w‖ by far less than 1%; plain GD on a separable logistic problem
  // keeps growing ‖w‖. Discrete GD only ever increases ‖w‖ under BN (‖w + g‖² = ‖w‖² + ‖g‖²).
  EXPECT_LT(r["bn"]["max_norm_change_pct_by_init"]["init_1e+01"].get<double>(), 1.0);
  for (const auto& run : r["bn"]["runs"])
    EXPECT_GE(run["final_norm"].get<double>(), run["init_norm"].get<double>());
  EXPECT_GT(r["plain"]["max_norm_change_pct"].get<double>(),
            10 * r["bn"]["max_norm_change_pct"].get<double>());
  // From unit norm both arms find the separator.
  for (const auto& run : r["bn"]["runs"])
    if (run["init_norm"] == 1.0) EXPECT_GT(run["train_acc"].get<double>(), 0.9);
  EXPECT_GT(r["plain"]["min_train_acc"].get<double>(), 0.9);
}

// From w = -w* (180 degrees) the BN arm need not turn w at all: γ changes sign, and the
// classifier sign(γ) w is then w*. The reported angle is that classifier's, not w's.
TEST(Geometry, Exp1ReadsTheBnClassifierThroughTheSignOfGamma) {
  testing::TempDir dir;
  auto r = run_task(dir,
                    "{name: gd_linear, points: 60, iterations: 300, init_norms: [1.0], "
                    "init_angles: [180.0]}",
                    {"gd_linear.dat"});
  const auto& run = r["bn"]["runs"][0];
  EXPECT_GT(run["train_acc"].get<double>(), 0.9);
  EXPECT_LT(run["final_angle_deg"].get<double>(), 45.0);
  EXPECT_GT(r["plain"]["min_train_acc"].get<double>(), 0.9);
  EXPECT_LT(r["plain"]["mean_final_angle_deg"].get<double>(), 45.0);
}

TEST(Geometry, Exp2HessianSpectrumAndConvergence) {
  testing::TempDir dir;
  auto r = run_task(dir,
                    "{name: hessian_mlp, inputs: 4, width: 6, hidden_layers: 2, samples: 64, "
                    "iterations: 400, lanczos_steps: 30, eps: 1.0e-10, lr: 0.1}",
                    {"hessian_loss.dat", "hessian_spectrum.dat", "hessian_mlp.gp"});
  for (const char* arm : {"bn", "plain"}) {
    const double lmax = r[arm]["lambda_max"].get<double>();
    EXPECT_GT(lmax, 0);
    // Dense eigendecomposition, Lanczos and power iteration agree on the top eigenvalue.
    EXPECT_NEAR(r[arm]["lambda_max_lanczos"].get<double>(), lmax, 1e-6 * lmax) << arm;
    EXPECT_NEAR(r[arm]["lambda_max_power"].get<double>(), lmax, 1e-3 * lmax) << arm;
    EXPECT_GT(r[arm]["condition"].get<double>(), 1.0);
  }
  // BN's scale symmetries: at least one zero mode per normalized unit (2 layers x 6), exact
  // with a negligible eps (BN's 1e-5 tilts them by ~eps/σ²). Only near a stationary point:
  // differentiating ∇L(w)·w = 0 gives H w = -∇L, so the radial directions are null vectors
  // of H only where the gradient vanishes (hence the converging lr 0.1 here).
  EXPECT_GE(r["bn"]["zero_modes"].get<int64_t>(),
            r["bn"]["expected_symmetry_modes"].get<int64_t>());
  EXPECT_EQ(r["bn"]["expected_symmetry_modes"].get<int64_t>(), 12);
  // stability_limit is the curvature where GD at this lr turns unstable: on λx²/2, 100 steps
  // of x <- x - lr λ x shrink x just below it and blow it up just above.
  const double limit = r["bn"]["stability_limit"].get<double>();
  auto after_gd = [](double curvature) {
    double x = 1;
    for (int i = 0; i < 100; ++i) x -= 0.1 * curvature * x;
    return std::abs(x);
  };
  EXPECT_LT(after_gd(0.99 * limit), 0.5);
  EXPECT_GT(after_gd(1.01 * limit), 2.0);
  EXPECT_TRUE(r.contains("lambda_max_ratio"));
}

TEST(Geometry, Exp3MarginsAndNoiseCurve) {
  testing::TempDir dir;
  auto r = run_task(dir,
                    "{name: margin_mlp, inputs: 10, hidden: 12, train: 80, test: 100, "
                    "iterations: 300, max_iterations: 5000, noise_stds: [0.0, 0.1, 3.0], "
                    "noise_trials: 3, bins: 10}",
                    {"margin_hist.dat", "margin_noise.dat", "margin_mlp.gp"});
  for (const char* arm : {"bn", "plain"}) {
    EXPECT_DOUBLE_EQ(r[arm]["train_acc"].get<double>(), 100.0) << arm;  // zero training error
    EXPECT_GT(r[arm]["min_margin"].get<double>(), 0) << arm;            // every margin positive
    EXPECT_GE(r[arm]["mean_margin"].get<double>(), r[arm]["min_margin"].get<double>());
    const auto acc = r[arm]["noise_train_acc"];
    EXPECT_DOUBLE_EQ(acc[0].get<double>(), 1.0);  // no noise: the trained net
    EXPECT_LT(acc[2].get<double>(), 0.9) << arm;  // huge noise destroys it
    EXPECT_GT(r[arm]["noise_tolerance"].get<double>(), 0);
  }
  // The ratio the report judges: BN's mean margin over the plain net's.
  EXPECT_DOUBLE_EQ(r["margin_ratio"].get<double>(),
                   r["bn"]["mean_margin"].get<double>() / r["plain"]["mean_margin"].get<double>());
}

TEST(Geometry, Exp4DetectsNonFiniteTrainingFromAHugeInit) {
  testing::TempDir dir;
  auto r = run_task(dir,
                    "{name: bad_init, inputs: 6, width: 8, layers: 4, samples: 64, "
                    "iterations: 150, init_scales: [1.0, 1000.0], target_acc: 0.6, loss: mse}",
                    {"bad_init.dat", "bad_init.gp"});
  // With MSE on a 1000x init the outputs are ~1e12 and GD overflows to inf/NaN within a few
  // steps (the BN arm too: its output layer is not normalized); such a run stops there, has
  // no final loss and did not train. Both arms train from the standard init.
  int nonfinite = 0;
  for (const char* arm : {"bn", "plain"}) {
    const auto& huge = r[arm]["scale_1e+03"];
    if (!huge["nonfinite_iteration"].is_null()) {
      ++nonfinite;
      EXPECT_TRUE(huge["final_loss"].is_null());
      EXPECT_EQ(huge["trained"], 0);
    }
    EXPECT_EQ(r[arm]["weight_layers"], 4) << arm;  // layers: 4 (the paper's 5 by default)
    EXPECT_EQ(r[arm]["scale_1e+00"]["trained"], 1) << arm;
    EXPECT_TRUE(r[arm]["scale_1e+00"]["nonfinite_iteration"].is_null()) << arm;
  }
  EXPECT_GE(nonfinite, 1);
  EXPECT_EQ(r["bn"]["runs_nonfinite"].get<int>() + r["plain"]["runs_nonfinite"].get<int>(),
            nonfinite);
}

TEST(Geometry, Table1SymmetriesHoldForBnLnWnAndFailForPlain) {
  testing::TempDir dir;
  auto r = run_task(dir, "{name: symmetry, hidden: [6, 5], batch: 16}", {});
  const auto& c = r["checks"];
  EXPECT_EQ(c["bn_neuron"]["invariant"], 1);
  EXPECT_EQ(c["ln_layer"]["invariant"], 1);
  EXPECT_EQ(c["wn_direction"]["invariant"], 1);
  EXPECT_EQ(c["plain_neuron"]["invariant"], 0);
  EXPECT_EQ(c["plain_layer"]["invariant"], 0);
  EXPECT_EQ(c["ln_neuron"]["invariant"], 0);
  EXPECT_EQ(c["wn_table1"]["invariant"], 0);  // the printed (αv, g/α) is not a symmetry
  EXPECT_EQ(r["all_as_expected"], 1);
}

}  // namespace
}  // namespace normexp
