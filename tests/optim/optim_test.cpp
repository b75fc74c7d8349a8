#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "compose/components.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "support/ml_support.h"

namespace normexp::optim {
namespace {

nn::ParamInfo param(const std::string& name, torch::Tensor t, nn::ParamRole role) {
  nn::ParamInfo p;
  p.name = name;
  p.tensor = t.requires_grad_(true);
  p.role = role;
  return p;
}

TEST(Sgd, MomentumAndDecayMatchClosedForm) {
  auto w = torch::tensor({{1.0, -2.0}});
  auto b = torch::tensor({0.5});
  SgdOptions o;
  o.momentum = 0.9;
  o.weight_decay = 0.1;
  Sgd sgd({param("w", w, nn::ParamRole::Weight), param("b", b, nn::ParamRole::Bias)}, o);
  const double lr = 0.5;
  // Two steps with constant gradient g: buf1 = g + wd w0; buf2 = 0.9 buf1 + g + wd w1.
  auto g = torch::tensor({{0.2, 0.4}});
  double w0[2] = {1.0, -2.0}, buf[2];
  for (int step = 0; step < 2; ++step) {
    w.mutable_grad() = g.clone();
    b.mutable_grad() = torch::tensor({1.0});
    sgd.step(lr);
    for (int i = 0; i < 2; ++i) {
      const double gi = g[0][i].item<double>() + 0.1 * w0[i];
      buf[i] = step == 0 ? gi : 0.9 * buf[i] + gi;
      w0[i] -= lr * buf[i];
      EXPECT_NEAR(w[0][i].item<double>(), w0[i], 1e-6);
    }
  }
  // Bias: no decay (Ikami et al. 2021), momentum only: 0.5 - 0.5*1 - 0.5*1.9.
  EXPECT_NEAR(b.item<double>(), 0.5 - 0.5 - 0.5 * 1.9, 1e-6);
}

// cwo's projected step (Ikami et al. 2021 Algorithm 1) with the choices the paper leaves open.
nn::ParamInfo constrained(const std::string& name, torch::Tensor t, nn::ConstraintSpec spec) {
  auto p = param(name, t, nn::ParamRole::Constrained);
  p.constraint = spec;
  return p;
}

TEST(Sgd, TangentStepNeverFlipsARowWhereTheLiteralStepDoes) {
  // A row on the constraint set (centered, ||w||^2 = 2) and a gradient along the row itself
  // (what a layer whose output should shrink gets). The literal step w - lr*g with lr*|g| >
  // |w| passes through the origin; the projection then lands on -w: the filter flips sign.
  const auto w0 = torch::tensor({{1.0, -1.0, 0.0, 0.0}});
  for (const bool tangent : {false, true}) {
    SCOPED_TRACE(tangent ? "tangent" : "centered");
    auto w = w0.clone();
    nn::ConstraintSpec spec;
    spec.tangent = tangent;
    SgdOptions o;
    o.momentum = 0.0;
    Sgd sgd({constrained("w", w, spec)}, o);
    w.mutable_grad() = w0 * 3.0;  // radial, lr * 3 = 1.5 > 1
    sgd.step(0.5);
    const double cos = (w * w0).sum().item<double>() / 2.0;
    EXPECT_NEAR((w * w).sum().item<double>(), 2.0, 1e-6);
    if (tangent)
      EXPECT_NEAR(cos, 1.0, 1e-6);  // the radial gradient is removed: nothing moves
    else
      EXPECT_NEAR(cos, -1.0, 1e-6);  // flipped
  }
  // A tangent gradient moves both the same way.
  auto g = torch::tensor({{0.0, 0.0, 1.0, -1.0}});
  std::vector<torch::Tensor> after;
  for (const bool tangent : {false, true}) {
    auto w = w0.clone();
    nn::ConstraintSpec spec;
    spec.tangent = tangent;
    Sgd sgd({constrained("w", w, spec)}, SgdOptions{});
    w.mutable_grad() = g.clone();
    sgd.step(0.3);
    after.push_back(w);
  }
  EXPECT_TRUE(torch::allclose(after[0], after[1], 1e-6, 1e-7));
}

TEST(Sgd, ConstrainedWeightsWithoutMomentumTakeAlgorithm1sPlainStep) {
  // Two steps with the same tangent gradient: with momentum the second moves further (the
  // buffer holds 1.9 g); without, both steps are lr * g before the projection.
  auto run = [](bool momentum) {
    auto w = torch::tensor({{1.0, -1.0, 0.0, 0.0}});
    nn::ConstraintSpec spec;
    spec.momentum = momentum;
    SgdOptions o;
    o.momentum = 0.9;
    Sgd sgd({constrained("w", w, spec)}, o);
    std::vector<double> angles;
    auto prev = w.clone();
    for (int i = 0; i < 2; ++i) {
      w.mutable_grad() = torch::tensor({{0.0, 0.0, 0.1, -0.1}});
      sgd.step(0.5);
      angles.push_back(std::acos(std::min(1.0, (w * prev).sum().item<double>() / 2.0)));
      prev = w.clone();
    }
    EXPECT_EQ(sgd.state().empty(), !momentum);
    return angles;
  };
  const auto with = run(true), without = run(false);
  EXPECT_NEAR(with[0], without[0], 1e-6);  // the first step is the same: buf = g
  EXPECT_GT(with[1], 1.5 * without[1]);
  EXPECT_NEAR(without[1], without[0], 0.02);
}

TEST(Sgd, NesterovAndDecayOfNormParamsWhenAsked) {
  auto g = torch::tensor({2.0});
  SgdOptions o;
  o.momentum = 0.5;
  o.nesterov = true;
  o.weight_decay = 1.0;
  o.decay_norm_and_bias = true;
  auto gamma = torch::tensor({1.0});
  Sgd sgd({param("gamma", gamma, nn::ParamRole::NormAffine)}, o);
  gamma.mutable_grad() = g.clone();
  sgd.step(0.1);
  // d = g + wd*w = 3; buf = 3; nesterov: d + m*buf = 4.5; w = 1 - 0.45.
  EXPECT_NEAR(gamma.item<double>(), 0.55, 1e-6);  // float32
}

// The device-LR step (what a CUDA graph captures) is the host-LR step with lr read from a
// tensor: same trajectory for momentum, Nesterov, decay and constrained (centered, projected)
// weights, with the LR changing every step as a schedule makes it.
TEST(Sgd, DeviceLrStepFollowsTheHostLrStep) {
  torch::manual_seed(3);
  auto make = [](const torch::Tensor& w0, const torch::Tensor& c0, const torch::Tensor& b0,
                 std::vector<torch::Tensor>& keep) {
    keep = {w0.clone(), c0.clone(), b0.clone()};
    auto pc = param("c", keep[1], nn::ParamRole::Constrained);
    pc.constraint.center = true;
    pc.constraint.sphere = true;
    pc.constraint.c = 2.0;
    return std::vector<nn::ParamInfo>{param("w", keep[0], nn::ParamRole::Weight), pc,
                                      param("b", keep[2], nn::ParamRole::Bias)};
  };
  auto w0 = torch::randn({3, 4}, torch::kDouble), c0 = torch::randn({2, 3, 2, 2}, torch::kDouble),
       b0 = torch::randn({3}, torch::kDouble);
  for (bool nesterov : {false, true}) {
    SgdOptions o;
    o.momentum = 0.9;
    o.nesterov = nesterov;
    o.weight_decay = 0.01;
    std::vector<torch::Tensor> host_t, dev_t;
    Sgd host(make(w0, c0, b0, host_t), o), dev(make(w0, c0, b0, dev_t), o);
    ASSERT_TRUE(dev.capturable());
    auto lr_t = torch::zeros({}, torch::kDouble);
    for (int step = 0; step < 5; ++step) {
      const double lr = 0.1 / (1 + step);
      for (size_t i = 0; i < 3; ++i) {
        auto g = torch::randn_like(host_t[i]);
        host_t[i].mutable_grad() = g.clone();
        dev_t[i].mutable_grad() = g.clone();
      }
      host.step(lr);
      lr_t.fill_(lr);
      dev.step_on_device(lr_t);
      for (size_t i = 0; i < 3; ++i)
        EXPECT_TRUE(torch::allclose(host_t[i], dev_t[i], 1e-12, 1e-12)) << "tensor " << i;
    }
    // The constraint still holds after the device steps: rows centered, on the sphere.
    auto rows = dev_t[1].reshape({2, -1});
    EXPECT_LT(rows.mean(1).abs().max().item<double>(), 1e-12);
    EXPECT_NEAR(rows.pow(2).sum(1)[0].item<double>(), 2.0, 1e-9);
  }
}

// In place (a captured CUDA graph keeps the gradients' addresses), every defined gradient,
// and an undefined one stays undefined.
TEST(Optimizer, ZeroGradZeroesEveryGradientInPlace) {
  auto a = torch::ones({3}), b = torch::ones({2, 2}), c = torch::ones({1});
  Sgd opt({param("a", a, nn::ParamRole::Weight), param("b", b, nn::ParamRole::Bias),
           param("c", c, nn::ParamRole::Weight)},
          SgdOptions{});
  a.mutable_grad() = torch::full({3}, 2.0);
  b.mutable_grad() = torch::full({2, 2}, -1.0);
  const void* where_a = a.grad().data_ptr();
  opt.zero_grad();
  EXPECT_TRUE(a.grad().eq(0).all().item<bool>());
  EXPECT_TRUE(b.grad().eq(0).all().item<bool>());
  EXPECT_EQ(a.grad().data_ptr(), where_a);
  EXPECT_FALSE(c.grad().defined());
}

TEST(AdamW, HasNoDeviceLrStep) {
  auto w = torch::ones({2});
  AdamW opt({param("w", w, nn::ParamRole::Weight)}, AdamWOptions{});
  EXPECT_FALSE(opt.capturable());
  EXPECT_THROW(opt.step_on_device(torch::zeros({})), std::logic_error);
}

// Adam's first two steps in closed form: m_hat / sqrt(v_hat) = g/|g| at step 1; decoupled
// decay p *= 1 - lr*wd on weights only; state round-trips through state()/load_state().
TEST(AdamW, ConstrainedWeightsSeeOnlyTheCenteredGradient) {
  // A cwo weight's step uses the row-centered gradient (Ikami et al. 2021 Algorithm 1). For
  // SGD centering before or after the step is the same (the projection centers too); Adam's
  // elementwise second moment is not linear, so a gradient with a large row mean would move
  // the weight differently if it reached the moments uncentered.
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  const auto w0 = torch::tensor({1.0, -1.0, 0.5, -0.5}, f64).view({1, 4});
  const auto tangent = torch::tensor({0.3, 0.1, -0.1, -0.3}, f64).view({1, 4});  // centered
  auto run = [&](const torch::Tensor& g) {
    auto w = w0.clone();
    nn::ParamInfo p;
    p.name = "w";
    p.tensor = w.requires_grad_(true);
    p.role = nn::ParamRole::Constrained;
    p.constraint.c = 2.5;
    AdamW opt({p}, AdamWOptions{});
    for (int i = 0; i < 3; ++i) {
      w.mutable_grad() = g.clone();
      opt.step(0.05);
    }
    return w.detach().clone();
  };
  const auto centered = run(tangent), shifted = run(tangent + 5.0);
  EXPECT_TRUE(torch::allclose(centered, shifted, 1e-12, 1e-12)) << centered << shifted;
  EXPECT_FALSE(torch::allclose(centered, w0, 1e-3, 0));  // and it did move
}

TEST(AdamW, StepsMatchClosedFormAndStateRoundTrips) {
  auto w = torch::tensor({{1.0, -2.0}}, torch::kDouble);
  auto b = torch::tensor({0.5}, torch::kDouble);
  AdamWOptions o;
  o.weight_decay = 0.1;
  o.eps = 0.0;
  AdamW opt({param("w", w, nn::ParamRole::Weight), param("b", b, nn::ParamRole::Bias)}, o);
  w.mutable_grad() = torch::tensor({{0.3, -4.0}}, torch::kDouble);
  b.mutable_grad() = torch::tensor({-2.0}, torch::kDouble);
  opt.step(0.01);
  // w = w*(1 - 0.001) - 0.01*sign(g); b has no decay.
  EXPECT_NEAR(w[0][0].item<double>(), 1.0 * 0.999 - 0.01, 1e-12);
  EXPECT_NEAR(w[0][1].item<double>(), -2.0 * 0.999 + 0.01, 1e-12);
  EXPECT_NEAR(b[0].item<double>(), 0.5 + 0.01, 1e-12);
  // Step 2 with gradient g2: m = 0.9*0.1*g1 + 0.1*g2 ... bias-corrected by 1 - 0.9^2 etc.
  const double g1 = -2.0, g2 = 1.0;
  b.mutable_grad() = torch::tensor({g2}, torch::kDouble);
  std::map<std::string, torch::Tensor> map;
  for (const auto& [k, v] : opt.state()) map[k] = v.clone();  // state() is live, not a copy
  opt.step(0.01);
  const double m = (0.9 * 0.1 * g1 + 0.1 * g2) / (1 - 0.81);
  const double v = (0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2) / (1 - 0.999 * 0.999);
  EXPECT_NEAR(b[0].item<double>(), 0.51 - 0.01 * m / std::sqrt(v), 1e-12);
  // A fresh optimizer loaded with the step-1 state repeats step 2 exactly.
  auto b2 = torch::tensor({0.51}, torch::kDouble);
  auto w2 = w.detach().clone();
  AdamW again({param("w", w2, nn::ParamRole::Weight), param("b", b2, nn::ParamRole::Bias)}, o);
  again.load_state(map);
  b2.mutable_grad() = torch::tensor({g2}, torch::kDouble);
  again.step(0.01);
  EXPECT_NEAR(b2[0].item<double>(), b[0].item<double>(), 1e-12);
}

// The multi-tensor step against the textbook per-tensor loop, written out here, over tensors
// of every role and shape: decayed weights, undecayed norm parameters and biases, a
// constrained weight (centered gradient, projection), a parameter whose gradient first
// appears at step 2 (its moments start then, with the global step's bias correction) and
// one that never gets a gradient (untouched, no state). Catches lists that fall out of step
// (moments of one tensor applied to another), decay on the wrong tensors, eps in the wrong
// place, a projection missed.
TEST(AdamW, MultiTensorStepEqualsThePerTensorLoop) {
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  torch::manual_seed(3);
  struct Spec {
    const char* name;
    std::vector<int64_t> shape;
    nn::ParamRole role;
  };
  const std::vector<Spec> specs = {{"w", {3, 4}, nn::ParamRole::Weight},
                                   {"gamma", {4}, nn::ParamRole::NormAffine},
                                   {"c", {2, 5}, nn::ParamRole::Constrained},
                                   {"late", {2, 2}, nn::ParamRole::Weight},
                                   {"b", {4}, nn::ParamRole::Bias},
                                   {"never", {3}, nn::ParamRole::Weight}};
  AdamWOptions o;
  o.weight_decay = 0.3;
  o.eps = 1e-3;  // large enough to matter
  std::vector<nn::ParamInfo> infos;
  std::vector<torch::Tensor> ref, m, v;
  for (const auto& spec : specs) {
    auto t = torch::randn(spec.shape, f64);
    auto info = param(spec.name, t, spec.role);
    if (spec.role == nn::ParamRole::Constrained) {
      info.constraint.c = 2.5;
      torch::NoGradGuard no_grad;
      nn::project_rows_(t, info.constraint);
    }
    infos.push_back(info);
    ref.push_back(t.detach().clone());
    m.push_back(torch::zeros_like(t));
    v.push_back(torch::zeros_like(t));
  }
  AdamW opt(infos, o);
  const double lr = 0.05;
  for (int step = 1; step <= 3; ++step) {
    const double c1 = 1 - std::pow(o.beta1, step), c2 = 1 - std::pow(o.beta2, step);
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::string name = specs[i].name;
      if (name == "never" || (name == "late" && step == 1)) continue;
      auto g = torch::randn(specs[i].shape, f64) * (i + 1.0) + 0.5;
      infos[i].tensor.mutable_grad() = g.clone();
      if (specs[i].role == nn::ParamRole::Constrained) nn::center_rows_(g);
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
      if (specs[i].role != nn::ParamRole::NormAffine && specs[i].role != nn::ParamRole::Bias)
        ref[i] = ref[i] * (1 - lr * o.weight_decay);
      ref[i] = ref[i] - lr * (m[i] / c1) / ((v[i] / c2).sqrt() + o.eps);
      if (specs[i].role == nn::ParamRole::Constrained)
        nn::project_rows_(ref[i], infos[i].constraint);
    }
    opt.step(lr);
    for (size_t i = 0; i < specs.size(); ++i)
      EXPECT_TRUE(torch::allclose(infos[i].tensor, ref[i], 1e-12, 1e-12))
          << specs[i].name << " after step " << step << "\n"
          << infos[i].tensor << "\n" << ref[i];
  }
  std::map<std::string, torch::Tensor> state;
  for (const auto& [k, t] : opt.state()) state[k] = t;
  EXPECT_EQ(state.count("exp_avg.never"), 0u);
  ASSERT_EQ(state.count("exp_avg_sq.late"), 1u);
  EXPECT_TRUE(torch::allclose(state["exp_avg_sq.late"], v[3], 1e-12, 1e-14));
}

// Weight decay by role on a real model (timm's and DeiT's ViT recipe): the class token, the
// position embedding, every LayerNorm gamma/beta and every bias keep their values under a
// zero gradient, and only the linear and conv weights shrink, by exactly 1 - lr * wd (AdamW's
// decoupled decay; Adam's own update is 0 at a zero gradient). pos_embed and cls_token are
// 3-D, so only their names keep them out of the decay.
TEST(AdamW, VitTokensPositionsAndLayerNormsAreNotDecayed) {
  testing::TempDir dir;
  std::string yaml = testing::kTinyYaml;
  const std::string cnn = "model: {name: cnn9, width: 0.125}";
  yaml.replace(yaml.find(cnn), cnn.size(),
               "model: {name: vit, patch: 4, dim: 16, depth: 2, heads: 2, mlp_dim: 32}");
  const double lr = 0.1, wd = 0.5;
  auto exp = testing::experiment_from(
      dir, yaml, {"norm.name=ln", "optim.name=adamw", "optim.weight_decay=0.5", "optim.lr=0.1"});
  torch::manual_seed(0);
  auto b = compose::build(exp, c10::Device(c10::kCPU));
  std::map<std::string, torch::Tensor> before;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : b.model->named_parameters()) {
      p.value().uniform_(0.5, 1.5);
      p.value().mutable_grad() = torch::zeros_like(p.value());
      before[p.key()] = p.value().clone();
    }
  }
  b.optimizer->step(lr);
  int decayed = 0, kept = 0;
  for (const auto& item : b.model->named_modules()) {
    torch::nn::Module& m = *item.value();
    const bool weight_layer = dynamic_cast<torch::nn::LinearImpl*>(&m) ||
                              dynamic_cast<torch::nn::Conv2dImpl*>(&m);
    for (const auto& p : m.named_parameters(/*recurse=*/false)) {
      const std::string name = item.key().empty() ? p.key() : item.key() + "." + p.key();
      const bool decays = weight_layer && p.key() == "weight";
      const auto expected = decays ? before.at(name) * (1 - lr * wd) : before.at(name);
      EXPECT_TRUE(torch::allclose(p.value(), expected, 1e-6, 1e-7))
          << name << (decays ? " was not decayed" : " was decayed");
      ++(decays ? decayed : kept);
      if (p.key() == "cls_token" || p.key() == "pos_embed") EXPECT_FALSE(decays);
    }
  }
  EXPECT_GE(decayed, 2 * 4 + 2);  // per block qkv, proj, fc1, fc2; the patch conv, the head
  EXPECT_GE(kept, 2 + 2 * 2 * 2 + 2);  // tokens, positions, two LayerNorms per block, the last
}

TEST(LrSchedule, CosineWarmupAndMultistep) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml, {"schedule.min_lr=0.01"});
  ScheduleContext ctx{0.1, 10, 5};
  auto cos = make_cosine(exp.section("schedule"), ctx);
  EXPECT_DOUBLE_EQ(cos->lr_at(0), 0.1);
  EXPECT_NEAR(cos->lr_at(25), 0.01 + 0.09 * 0.5, 1e-12);  // half way
  EXPECT_NEAR(cos->lr_at(50), 0.01, 1e-12);
  for (int s = 1; s < 50; ++s) EXPECT_LT(cos->lr_at(s), cos->lr_at(s - 1));

  auto warm = testing::experiment_from(dir, testing::kTinyYaml, {"schedule.warmup_epochs=1"});
  auto wcos = make_cosine(warm.section("schedule"), ctx);
  EXPECT_NEAR(wcos->lr_at(0), 0.1 * 1 / 10.0, 1e-12);
  EXPECT_NEAR(wcos->lr_at(9), 0.1, 1e-12);
  EXPECT_NEAR(wcos->lr_at(10), 0.1, 1e-12);

  auto ms = testing::experiment_from(dir, testing::kTinyYaml,
                                     {"schedule.name=multistep",
                                      "schedule.milestones=[2,4]", "schedule.gamma=0.5"});
  auto step = make_multistep(ms.section("schedule"), ctx);
  EXPECT_DOUBLE_EQ(step->lr_at(19), 0.1);
  EXPECT_DOUBLE_EQ(step->lr_at(20), 0.05);
  EXPECT_DOUBLE_EQ(step->lr_at(40), 0.025);
}

TEST(LrSchedule, BadValuesAreConfigErrors) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"schedule.name=multistep", "schedule.milestones=[5,2]"});
  EXPECT_THROW(make_multistep(exp.section("schedule"), {0.1, 1, 10}), ConfigError);
  auto high = testing::experiment_from(dir, testing::kTinyYaml, {"schedule.min_lr=1.0"});
  EXPECT_THROW(make_cosine(high.section("schedule"), {0.1, 1, 10}), ConfigError);
}

}  // namespace
}  // namespace normexp::optim
