// resnet and wrn: published parameter counts, output shapes, shortcuts, option checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "support/ml_support.h"
#include "support/reference_nets.h"
#include "compose/components.h"
#include "compose/run.h"
#include "models/transformer.h"

namespace normexp {
namespace {

const c10::Device kCpu(c10::kCPU);

// Builds through the real schema and registries (no data are loaded). `model` and `norm` are
// the inside of a YAML flow mapping, e.g. "name: resnet, depth: 8".
train::Components build(const std::string& model, const std::string& norm = "name: bn",
                   int classes = 10) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: " + std::to_string(classes) +
               ", resolution: 32, train_size: 16, test_size: 8}\n"
               "model: {" + model + "}\nnorm: {" + norm + "}\n");
  return compose::build(exp, kCpu);
}

ConfigIssue single_issue(const std::string& model, const std::string& norm) {
  try {
    build(model, norm);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.issues().size(), 1u) << e.what();
    return e.issues().at(0);
  }
  ADD_FAILURE() << "expected a ConfigError for model {" << model << "}, norm {" << norm << "}";
  return {};
}

torch::nn::Sequential stage(torch::nn::Module& model, const std::string& name) {
  for (const auto& child : model.named_children())
    if (child.key() == name)
      return torch::nn::Sequential(std::dynamic_pointer_cast<torch::nn::SequentialImpl>(child.value()));
  ADD_FAILURE() << "no stage " << name;
  return torch::nn::Sequential(nullptr);
}

torch::Tensor param(torch::nn::Module& model, const std::string& name) {
  auto params = model.named_parameters();
  auto* p = params.find(name);
  EXPECT_NE(p, nullptr) << name;
  return p ? *p : torch::Tensor();
}

// He et al. 2016 §4.2 (option A shortcuts): ResNet-110 has 1.7M parameters. 1,727,962 with
// option A; the 1,730,714 often quoted counts option B's 1x1 conv + BN projections at the
// two stage transitions (16*32 + 2*32 + 32*64 + 2*64 = 2,752 more).
TEST(Models, ResNet110ParameterCountWithBn) {
  EXPECT_EQ(build("name: resnet, depth: 110").num_parameters, 1727962);
  EXPECT_EQ(build("name: resnet, depth: 110, shortcut: B").num_parameters, 1730714);
}

// Zagoruyko & Komodakis 2016, Table: WRN-28-10 has 36.5M parameters (1x1 shortcut convs
// without bias, as in the reference implementation).
TEST(Models, Wrn28x10ParameterCountWithBn) {
  EXPECT_EQ(build("name: wrn").num_parameters, 36479194);
}

TEST(Models, OutputIsOneLogitPerClassInTrainingAndEval) {
  for (const std::string model : {"name: cnn9, width: 0.25", "name: resnet, depth: 8",
                                  "name: resnet, depth: 8, shortcut: B",
                                  "name: wrn, depth: 10, width: 1, dropout: 0.3"}) {
    for (int classes : {10, 100}) {
      SCOPED_TRACE(model + ", " + std::to_string(classes) + " classes");
      auto b = build(model, "name: bn", classes);
      auto x = torch::randn({2, 3, 32, 32});
      b.model->train();
      EXPECT_EQ(b.model->forward(x).sizes(), (std::vector<int64_t>{2, classes}));
      b.model->eval();
      auto y = b.model->forward(x);
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, classes}));
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    }
  }
}

TEST(Models, DepthMustFitTheArchitecture) {
  EXPECT_NO_THROW(build("name: resnet, depth: 14"));
  auto issue = single_issue("name: resnet, depth: 21", "name: bn");
  EXPECT_EQ(issue.path, "model.depth");
  EXPECT_NE(issue.message.find("6n + 2"), std::string::npos) << issue.message;
  EXPECT_NE(issue.where.find("exp.yaml:2"), std::string::npos) << issue.where;

  EXPECT_NO_THROW(build("name: wrn, depth: 16, width: 1"));
  issue = single_issue("name: wrn, depth: 12, width: 1", "name: bn");
  EXPECT_EQ(issue.path, "model.depth");
  EXPECT_NE(issue.message.find("6n + 4"), std::string::npos) << issue.message;
}

TEST(Models, GroupsNotDividingChannelsNameTheLayer) {
  // The first normalized layer, in forward order, with channels 32 does not divide.
  auto issue = single_issue("name: wrn, depth: 10, width: 1", "name: gn, groups: 32");
  EXPECT_EQ(issue.path, "norm.groups");
  EXPECT_EQ(issue.message, "32 does not divide the 16 channels of layer1.0.bn1");
  EXPECT_NE(issue.where.find("exp.yaml:3"), std::string::npos) << issue.where;

  issue = single_issue("name: resnet, depth: 8", "name: ws_gn, groups: 32");
  EXPECT_EQ(issue.path, "norm.groups");
  EXPECT_EQ(issue.message, "32 does not divide the 16 channels of bn1");

  // Default 16 groups and cnn9 at width 0.375 (24, 48, 96 channels).
  issue = single_issue("name: cnn9, width: 0.375", "name: gn");
  EXPECT_EQ(issue.path, "norm.groups");
  EXPECT_EQ(issue.message, "16 does not divide the 24 channels of features.1");
  EXPECT_EQ(issue.where, "default");

  // 16 groups divide every width of ResNet-110 and WRN-28-10 (Ikami et al. 2021 §4.1.1).
  EXPECT_NO_THROW(build("name: resnet, depth: 8", "name: gn"));
  EXPECT_NO_THROW(build("name: wrn, depth: 10, width: 10", "name: gn"));
}

// With the residual branch's last conv zeroed, a block's output is its shortcut (plus ReLU for
// the post-activation ResNet), which exposes the shortcut itself.
TEST(Models, ResNetOptionAShortcutSubsamplesAndZeroPads) {
  auto b = build("name: resnet, depth: 8", "name: none");
  auto& model = *b.model;
  {
    torch::NoGradGuard no_grad;
    param(model, "layer2.0.conv2.weight").zero_();
    param(model, "layer2.0.conv2.bias").zero_();
  }
  auto x = torch::rand({2, 16, 8, 8});  // post-ReLU activations are >= 0
  auto y = stage(model, "layer2")->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 32, 4, 4}));
  using torch::indexing::Slice;
  EXPECT_TRUE(torch::equal(y.slice(1, 0, 16), x.index({Slice(), Slice(), Slice(0, 8, 2), Slice(0, 8, 2)})));
  EXPECT_TRUE(torch::equal(y.slice(1, 16, 32), torch::zeros({2, 16, 4, 4})));
  for (const auto& p : model.named_parameters())
    EXPECT_EQ(p.key().find("shortcut"), std::string::npos) << p.key();
}

TEST(Models, WrnDropoutActsOnlyWhileTraining) {
  // WRN's dropout between the two convs (Zagoruyko & Komodakis 2016): training forwards
  // differ draw to draw; evaluation is deterministic and equals the same weights without it.
  auto with = build("name: wrn, depth: 10, width: 1, dropout: 0.5");
  auto without = build("name: wrn, depth: 10, width: 1");
  torch::manual_seed(6);
  const auto x = torch::randn({4, 3, 32, 32});
  with.model->train();
  EXPECT_FALSE(torch::allclose(with.model->forward(x), with.model->forward(x)));
  {
    torch::NoGradGuard no_grad;  // the same weights and BN estimates
    auto params = with.model->named_parameters();
    for (auto& p : without.model->named_parameters()) p.value().copy_(params[p.key()]);
    auto buffers = with.model->named_buffers();
    for (auto& b : without.model->named_buffers()) b.value().copy_(buffers[b.key()]);
  }
  with.model->eval();
  without.model->eval();
  const auto y = with.model->forward(x);
  EXPECT_TRUE(torch::equal(y, with.model->forward(x)));
  EXPECT_TRUE(torch::allclose(y, without.model->forward(x), 1e-5, 1e-6));
}

TEST(Models, WrnShortcutIsIdentityOrA1x1ConvOnThePreActivatedInput) {
  auto b = build("name: wrn, depth: 10, width: 1", "name: none");
  auto& model = *b.model;
  {
    torch::NoGradGuard no_grad;
    for (const std::string s : {"layer1", "layer2"}) {
      param(model, s + ".0.conv2.weight").zero_();
      param(model, s + ".0.conv2.bias").zero_();
    }
  }
  auto x = torch::randn({2, 16, 8, 8});
  // 16 -> 16, stride 1: identity on the raw input (negative values survive).
  EXPECT_TRUE(torch::equal(stage(model, "layer1")->forward(x), x));
  // 16 -> 32, stride 2: a 1x1 conv applied to relu(norm(x)) (the norm is the identity here).
  auto w = param(model, "layer2.0.shortcut.weight");
  auto bias = param(model, "layer2.0.shortcut.bias");
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{32, 16, 1, 1}));
  auto expected = torch::conv2d(torch::relu(x), w, bias, /*stride=*/{2, 2});
  auto got = stage(model, "layer2")->forward(x);
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-6));
  for (const auto& p : model.named_parameters())
    EXPECT_NE(p.key().rfind("layer1.0.shortcut", 0), 0u) << p.key();
}

}  // namespace
}  // namespace normexp

namespace normexp {
namespace {

// torchvision's resnet18 / resnet50 (1000 classes): 11,689,512 and 25,557,032 parameters.
TEST(Models, ResNetV1ParameterCountsMatchTorchvision) {
  EXPECT_EQ(build("name: resnet_v1, depth: 18", "name: bn", 1000).num_parameters, 11689512);
  EXPECT_EQ(build("name: resnet_v1, depth: 50", "name: bn", 1000).num_parameters, 25557032);
}

// ViT-B/16 at 224 px, 1000 classes: 86,567,656 parameters (timm's vit_base_patch16_224).
TEST(Models, VitB16ParameterCount) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: 1000, resolution: 224, train_size: 16, test_size: 8}\n"
           "model: {name: vit, preset: vit_b16}\nnorm: {name: ln}\n");
  EXPECT_EQ(compose::build(exp, kCpu).num_parameters, 86567656);
}

// The architectures against functional re-implementations written here from the papers,
// reading the model's own parameters, with every BN's statistics randomized so that each
// norm matters: a pooling of the wrong kind, a missing ReLU or pool, a stride in the wrong
// place changes the output although parameter counts and shapes stay the same.

// Ikami et al. 2021 §4.1.1's 9-layer CNN: Conv(3,64)x3 - AvgPool(2) - Conv(3,128)x3 -
// AvgPool(2) - Conv(3,256)x3 - GAP - Linear, each Conv = conv 3x3 (padding 1) - BN - ReLU.
TEST(Models, Cnn9IsThePapersNineLayerNet) {
  using testing::named_tensor;
  auto b = build("name: cnn9, width: 0.125");
  auto& model = *b.model;
  testing::randomize_batch_norms(model);
  // The convs (4-d weights) and the BNs, in the order the model made them.
  std::vector<std::string> convs;
  for (const auto& p : model.named_parameters())
    if (p.value().dim() == 4) convs.push_back(p.key());
  const auto norms = testing::batch_norm_prefixes(model);
  ASSERT_EQ(convs.size(), 9u);
  ASSERT_EQ(norms.size(), 9u);
  torch::manual_seed(3);
  const auto x = torch::randn({2, 3, 32, 32}, torch::kDouble);
  auto h = x;
  const int64_t widths[] = {8, 16, 32};  // 64, 128, 256 at width 0.125
  for (size_t l = 0; l < 9; ++l) {
    if (l == 3 || l == 6) h = torch::avg_pool2d(h, 2);
    const auto w = named_tensor(model, convs[l]);
    EXPECT_EQ(w.sizes(), (std::vector<int64_t>{widths[l / 3], h.size(1), 3, 3}));
    h = torch::relu(testing::eval_batch_norm(model, norms[l], torch::conv2d(h, w, {}, 1, 1)));
  }
  const auto want = torch::linear(h.mean({2, 3}), named_tensor(model, "classifier.weight"),
                                  named_tensor(model, "classifier.bias"));
  torch::NoGradGuard no_grad;
  const auto got = model.forward(x);
  EXPECT_TRUE(got.allclose(want, 1e-10, 1e-12)) << (got - want).abs().max().item<double>();
}

// The schemes' convolutions start from He et al. 2015's init in fan-out mode (as torchvision's
// ResNets and Ikami et al.'s code): std sqrt(2 / (out * k * k)). Fan-in mode gives another
// std wherever a layer changes width (the 3 -> 64 stem: 0.27 instead of 0.059), and the
// scale of the first steps with it. Checked on every conv with enough weights to estimate a
// std within a few per cent.
TEST(Models, SchemeConvolutionsAreHeInitialisedByFanOut) {
  for (const char* norm : {"name: bn", "name: gn", "name: ws_bn", "name: bcn"}) {
    torch::manual_seed(0);
    auto b = build("name: cnn9", norm);
    int checked = 0;
    for (const auto& p : b.model->named_parameters()) {
      const auto& w = p.value();
      if (w.dim() != 4 || w.numel() < 1500) continue;
      const double want = std::sqrt(2.0 / static_cast<double>(w.size(0) * w.size(2) * w.size(3)));
      EXPECT_NEAR(w.std().item<double>() / want, 1.0, 0.06) << norm << " " << p.key();
      ++checked;
    }
    EXPECT_EQ(checked, 9) << norm;
  }
}

// He et al. 2016, Table 1: ResNet-50 is a 7x7/2 conv - BN - ReLU stem and a 3x3/2 max pool,
// then stages of {3, 4, 6, 3} bottlenecks (1x1, 3x3, 1x1 to 4x the width; each conv - BN, a
// ReLU after the first two and after the sum), the first block of stages 2-4 strided (on its
// 3x3, as torchvision's "v1.5"), a 1x1 conv - BN projection where the shape changes; GAP,
// Linear.
TEST(Models, ResNet50IsHeEtAlsTableOne) {
  using testing::named_tensor;
  auto b = build("name: resnet_v1, depth: 50, width: 4");
  auto& model = *b.model;
  testing::randomize_batch_norms(model);
  auto conv_bn = [&](const std::string& conv, const std::string& bn, const torch::Tensor& x,
                     int64_t stride, int64_t pad) {
    return testing::eval_batch_norm(
        model, bn, torch::conv2d(x, named_tensor(model, conv + ".weight"), {}, stride, pad));
  };
  torch::manual_seed(4);
  const auto x = torch::randn({2, 3, 64, 64}, torch::kDouble);
  auto h = torch::max_pool2d(torch::relu(conv_bn("conv1", "bn1", x, 2, 3)), 3, 2, 1);
  const int64_t blocks[] = {3, 4, 6, 3};
  for (int s = 0; s < 4; ++s)
    for (int64_t i = 0; i < blocks[s]; ++i) {
      const std::string at = "layer" + std::to_string(s + 1) + "." + std::to_string(i) + ".";
      const int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      auto r = torch::relu(conv_bn(at + "conv1", at + "bn1", h, 1, 0));
      r = torch::relu(conv_bn(at + "conv2", at + "bn2", r, stride, 1));
      r = conv_bn(at + "conv3", at + "bn3", r, 1, 0);
      EXPECT_EQ(testing::has_tensor(model, at + "downsample_conv.weight"), i == 0) << at;
      const auto shortcut =
          i == 0 ? conv_bn(at + "downsample_conv", at + "downsample_norm", h, stride, 0) : h;
      h = torch::relu(r + shortcut);
    }
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{2, 4 * 8 * 4, 2, 2}));  // 64 px / 32
  const auto want = torch::linear(h.mean({2, 3}), named_tensor(model, "fc.weight"),
                                  named_tensor(model, "fc.bias"));
  torch::NoGradGuard no_grad;
  const auto got = model.forward(x);
  EXPECT_TRUE(got.allclose(want, 1e-10, 1e-12)) << (got - want).abs().max().item<double>();
}

TEST(Models, ResNetV1StemsAndVitShapes) {
  // The ImageNet stem divides the resolution by 32, the CIFAR stem by 8.
  for (const char* stem : {"imagenet", "cifar"}) {
    auto b = build(std::string("name: resnet_v1, depth: 50, width: 8, stem: ") + stem, "name: bcn");
    auto y = b.model->forward(torch::randn({2, 3, 32, 32}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 10}));
    EXPECT_EQ(b.model->feature_dim(), 8 * 8 * 4);
  }
  auto vit = build("name: vit, dim: 48, depth: 2, heads: 3, mlp_dim: 96, embed_norm: true",
                   "name: bcn");
  EXPECT_EQ(vit.model->forward(torch::randn({2, 3, 32, 32})).sizes(),
            (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(vit.model->feature_dim(), 48);
}

// Stochastic depth drops whole samples' branches with probability p and scales the kept ones
// by 1/(1 - p): every sample is all 0 or all 1/(1 - p), about p of them 0, the mean kept.
// Catches a per-element mask, a missing rescale, or a mask applied in evaluation.
TEST(DropPath, DropsWholeSamplesAndKeepsTheExpectation) {
  torch::manual_seed(0);
  const auto branch = torch::ones({4000, 3, 5});
  const auto y = models::drop_path(branch, 0.25, /*training=*/true);
  const auto per_sample_min = y.flatten(1).amin(1), per_sample_max = y.flatten(1).amax(1);
  EXPECT_TRUE(per_sample_min.equal(per_sample_max));  // one draw per sample
  const auto dropped = per_sample_max.eq(0);
  EXPECT_TRUE(per_sample_max.masked_select(dropped.logical_not()).allclose(
      torch::full({1}, 1 / 0.75)));
  EXPECT_NEAR(dropped.to(torch::kDouble).mean().item<double>(), 0.25, 0.03);  // 4.4 SE
  EXPECT_NEAR(y.mean().item<double>(), 1.0, 0.04);
  EXPECT_TRUE(models::drop_path(branch, 0.25, /*training=*/false).equal(branch));
  EXPECT_TRUE(models::drop_path(branch, 0.0, /*training=*/true).equal(branch));
}

// model.drop_path changes training forwards only: in evaluation the ViT equals the same
// weights without it, in training two forwards differ (and without it they agree: a ViT has no
// other randomness).
TEST(Models, VitDropPathActsInTrainingOnly) {
  const std::string vit = "name: vit, dim: 48, depth: 3, heads: 3, mlp_dim: 96";
  torch::manual_seed(0);
  auto plain = build(vit, "name: ln");
  torch::manual_seed(0);
  auto dropped = build(vit + ", drop_path: 0.5", "name: ln");
  const auto x = torch::randn({8, 3, 32, 32});
  plain.model->eval();
  dropped.model->eval();
  EXPECT_TRUE(plain.model->forward(x).allclose(dropped.model->forward(x)));
  plain.model->train();
  dropped.model->train();
  EXPECT_TRUE(plain.model->forward(x).equal(plain.model->forward(x)));
  EXPECT_FALSE(dropped.model->forward(x).allclose(dropped.model->forward(x)));
  EXPECT_EQ(single_issue(vit + ", drop_path: 1.0", "name: ln").path, "model.drop_path");
}

// DeiT's rule (Huang et al. 2016's linear decay): the stochastic-depth rate rises from 0 at the
// first block to model.drop_path at the last. Catches one rate for every block.
TEST(Models, VitDropPathRisesLinearlyOverTheBlocks) {
  auto b = build("name: vit, dim: 48, depth: 5, heads: 3, mlp_dim: 96, drop_path: 0.4", "name: ln");
  std::vector<double> rates;
  for (const auto& m : b.model->modules(/*include_self=*/false))
    if (const auto* block = m->as<models::BlockImpl>()) rates.push_back(block->drop_path_rate());
  ASSERT_EQ(rates.size(), 5u);
  for (size_t i = 0; i < rates.size(); ++i) EXPECT_NEAR(rates[i], 0.1 * i, 1e-12) << "block " << i;
}

// Our attention against LibTorch's own multi-head attention (written independently) with the
// same weights, in float64 and with weights large enough that the softmax is far from
// uniform (ViT's 0.02 init would hide a wrong scale). Catches logits scaled by 1/d instead of
// 1/sqrt(d), heads split along the wrong axis, q, k, v taken from the wrong rows.
TEST(Attention, EqualsLibTorchsMultiheadAttention) {
  torch::manual_seed(0);
  const int64_t dim = 12, heads = 3, n = 2, t = 5;
  models::Attention ours(dim, heads);
  torch::nn::MultiheadAttention ref(torch::nn::MultiheadAttentionOptions(dim, heads));
  ours->to(torch::kDouble);
  ref->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : ours->parameters()) p.normal_(0.0, 0.5);
    auto params = ours->named_parameters();
    ref->in_proj_weight.copy_(params["qkv.weight"]);
    ref->in_proj_bias.copy_(params["qkv.bias"]);
    ref->out_proj->weight.copy_(params["proj.weight"]);
    ref->out_proj->bias.copy_(params["proj.bias"]);
  }
  ours->record(true);
  const auto x = torch::randn({n, t, dim}, torch::kDouble);
  const auto y = ours->forward(x);
  const auto xt = x.transpose(0, 1);  // LibTorch's layout: (T, N, dim)
  const auto [y_ref, p_ref] = ref->forward(xt, xt, xt);
  EXPECT_TRUE(y.allclose(y_ref.transpose(0, 1), 1e-10, 1e-12));
  // Its weights are the heads' mean; ours keeps each head.
  const auto p = ours->attention();
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{n, heads, t, t}));
  EXPECT_TRUE(p.mean(1).allclose(p_ref, 1e-10, 1e-12));
  EXPECT_GT(p.amax().item<double>(), 0.5);  // far from uniform (1/5), so the scale shows
}

TEST(Models, VitOptionsAreChecked) {
  auto issue = single_issue("name: vit, patch: 5", "name: ln");
  EXPECT_EQ(issue.path, "model.patch");
  EXPECT_NE(issue.message.find("does not divide"), std::string::npos) << issue.message;
  issue = single_issue("name: vit, dim: 50, heads: 4", "name: ln");
  EXPECT_EQ(issue.path, "model.heads");
  issue = single_issue("name: resnet_v1, depth: 20", "name: bn");
  EXPECT_EQ(issue.path, "model.depth");
}

}  // namespace
}  // namespace normexp
