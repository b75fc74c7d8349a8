#include "registry/builtin.h"

#include <torch/torch.h>

#include "backend/device.h"
#include "data/cifar.h"
#include "data/fashion_mnist.h"
#include "data/synthetic.h"
#include "experiments/classify.h"
#include "experiments/magnitude_probe.h"
#include "experiments/simclr.h"
#include "experiments/capacity.h"
#include "experiments/geometry.h"
#include "models/mlp.h"
#include "models/dgcnn.h"
#include "data/imagenet.h"
#include "data/modelnet40.h"
#include "nn/schemes/schemes.h"

namespace normexp::registry {

using namespace config;

namespace {
void register_builtin_datasets(Registry<DatasetFactory>& r) {
  r.add({"synthetic", "seeded synthetic image classification (no download)",
         data::SyntheticDataset::options(),
         [](const Params& p) { return std::make_unique<data::SyntheticDataset>(p); }});
  for (auto v : {data::CifarVariant::Cifar10, data::CifarVariant::Cifar100})
    r.add({data::cifar_name(v), "official CIFAR binary files (normexp data fetch|prepare)",
           data::CifarDataset::options(v),
           [v](const Params& p) { return std::make_unique<data::CifarDataset>(p, v); }});
  r.add({"fashion_mnist", "Fashion-MNIST IDX files (Debian's dataset-fashion-mnist)",
         data::FashionMnistDataset::options(),
         [](const Params& p) { return std::make_unique<data::FashionMnistDataset>(p); }});
  r.add({"modelnet40", "ModelNet40 point clouds, HDF5 release of PointNet/DGCNN (Ikami et al. 2021 Table 5)",
         data::ModelNet40Dataset::options(),
         [](const Params& p) { return std::make_unique<data::ModelNet40Dataset>(p); }});
  r.add({"imagenet", "ImageNet (ILSVRC 2012) JPEGs in class folders, decoded by worker threads "
         "(normexp data prepare imagenet; Ikami et al. 2021 Table 6, Markou §5.1)",
         data::ImageNetDataset::options(),
         [](const Params& p) { return std::make_unique<data::ImageNetDataset>(p); }});
}

void register_builtin_models(Registry<ModelFactory>& r) {
  r.add({"cnn9", "9-layer CNN of Ikami et al. 2021 §4.1.1", models::cnn9_options(), models::make_cnn9});
  r.add({"resnet", "CIFAR ResNet-(6n+2) [He et al. 2016]", models::resnet_options(),
         models::make_resnet});
  r.add({"wrn", "Wide ResNet WRN-depth-width [Zagoruyko & Komodakis 2016]",
         models::wrn_options(), models::make_wrn});
  r.add({"resnet_v1", "ImageNet-layout ResNet-18/34/50/101/152, CIFAR stem option [He et al. 2016]",
         models::resnet_v1_options(), models::make_resnet_v1});
  r.add({"vit", "Vision Transformer; ViT-B/16 preset [Dosovitskiy et al. 2021]",
         models::vit_options(), models::make_vit});
  r.add({"mlp", "fully connected net on flattened images, first k hidden layers normalized "
                "(Than 2025)",
         models::mlp_options(), models::make_mlp});
  r.add({"dgcnn", "DGCNN point-cloud classifier: EdgeConv on a dynamic k-NN graph [Wang et al. 2019]",
         models::dgcnn_options(), models::make_dgcnn});
}

void register_builtin_norms(Registry<NormFactory>& r) {
  r.add({"bn", "conv -> BatchNorm", nn::bn_options(), nn::make_bn});
  r.add({"gn", "conv -> GroupNorm [Wu & He 2018]", nn::gn_options(), nn::make_gn});
  r.add({"ws_bn", "weight-standardized conv -> BatchNorm [Qiao et al. 2019]",
         nn::ws_bn_options(), nn::make_ws_bn});
  r.add({"ws_gn", "weight-standardized conv -> GroupNorm [Qiao et al. 2019]",
         nn::ws_gn_options(), nn::make_ws_gn});
  r.add({"none", "plain conv with bias, no normalization", nn::none_options(), nn::make_none});
  r.add({"ln", "conv -> LayerNorm (GroupNorm with 1 group); LayerNorm in transformers",
         nn::ln_options(), nn::make_ln});
  r.add({"bcn", "conv -> Band-Constrained Normalization (Markou); BCN in transformers",
         nn::bcn_options(), nn::make_bcn});
  auto cwo = nn::cwo_options();
  for (auto& spec : cwo)
    if (spec.key == "noise.schedule") spec.choices = noise_schedules().names();
  r.add({"cwo", "constrained weights + affine with noise injection (Ikami et al. 2021)", cwo,
         [](const Params& p) {
           return nn::make_cwo(p, noise_schedules().get(p.get_string("noise.schedule")).make);
         }});
}

void register_builtin_optimizers(Registry<OptimizerFactory>& r) {
  r.add({"sgd", "SGD with momentum; projected step on constrained weights", optim::sgd_options(),
         optim::make_sgd});
  r.add({"adamw", "AdamW (decoupled weight decay); projected step on constrained weights",
         optim::adamw_options(), optim::make_adamw});
}

void register_builtin_lr_schedules(Registry<LrScheduleFactory>& r) {
  r.add({"cosine", "cosine decay per iteration [SGDR]", optim::cosine_options(),
         optim::make_cosine});
  r.add({"multistep", "multiply by gamma at milestone epochs", optim::multistep_options(),
         optim::make_multistep});
  r.add({"constant", "constant rate", {}, optim::make_constant});
}

void register_builtin_noise_schedules(Registry<NoiseFactory>& r) {
  r.add({"none", "no noise", {}, [](int64_t, int64_t, double) { return 0.0; }});
  r.add({"constant", "sigma_l = sigma (Ikami et al. 2021 §3.3, non-residual nets)", {},
         [](int64_t, int64_t, double s) { return s; }});
  r.add({"linear", "sigma_l = (l/L) sigma (Ikami et al. 2021 Eq. 8, residual nets)", {},
         [](int64_t l, int64_t L, double s) { return s * static_cast<double>(l) / L; }});
}

void register_builtin_tasks(Registry<TaskFactory>& r) {
  r.add({"classify", "image classification: train on data.train, report test error (lib/train)",
         {},
         TaskFactory{{"data", "model", "norm", "optim", "schedule"}, experiments::classify,
                     experiments::check_classify, experiments::step_extras()}});
  r.add({"magnitude_probe",
         "Markou §5.2: find the largest-magnitude token; accuracy and attention entropy",
         experiments::probe_options(),
         TaskFactory{{"norm", "optim", "schedule"}, experiments::results_task(experiments::run_probe),
                     experiments::check_probe}});
  r.add({"simclr",
         "Markou §5.3: SimCLR (NT-Xent) pretraining, then kNN and linear evaluation",
         experiments::simclr_options(),
         TaskFactory{{"data", "model", "norm", "optim", "schedule"},
                     experiments::results_task(experiments::run_simclr,
                                               experiments::Resume::FromCheckpoint),
                     experiments::check_simclr, {"train.clip_grad_norm"}}});
  // Files 002 (§8 Experiments 1-4, Table 1) and 001/003: lib/experiments/{geometry,capacity}.cpp.
  r.add({"gd_linear", "Akbar Exp. 1: 2-D linear classifier +/- BN, weight trajectories",
         experiments::gd_linear_options(), TaskFactory{{}, experiments::results_task(experiments::gd_linear), {}}});
  r.add({"hessian_mlp", "Akbar Exp. 2: width-10 MLP regression +/- BN, Hessian spectrum",
         experiments::hessian_mlp_options(), TaskFactory{{}, experiments::results_task(experiments::hessian_mlp), {}}});
  r.add({"margin_mlp", "Akbar Exp. 3: 50-20-1 MLP +/- BN, margins and parameter noise",
         experiments::margin_mlp_options(), TaskFactory{{}, experiments::results_task(experiments::margin_mlp), {}}});
  r.add({"bad_init", "Akbar Exp. 4: 5-layer ReLU net from tiny/huge init +/- BN",
         experiments::bad_init_options(), TaskFactory{{}, experiments::results_task(experiments::bad_init), {}}});
  r.add({"symmetry", "Akbar Table 1: BN/LN/WN scale symmetries as loss-invariance checks",
         experiments::symmetry_options(), TaskFactory{{}, experiments::results_task(experiments::symmetry), {}}});
  r.add({"capacity",
         "Than 2025: weight-norm product, per-norm-layer sigma and the generalization gap "
         "per epoch",
         experiments::capacity_options(),
         TaskFactory{{"data", "model", "norm", "optim", "schedule"}, experiments::results_task(experiments::capacity),
                     experiments::check_capacity}});
}

template <class F>
std::map<std::string, std::vector<OptionSpec>> options_by_name(const Registry<F>& r) {
  std::map<std::string, std::vector<OptionSpec>> out;
  for (const auto& e : r.entries()) out[e.name] = e.options;
  return out;
}
}  // namespace

#define NORMEXP_TABLE(fn, Factory, kind, filler) \
  Registry<Factory>& fn() {                      \
    static Registry<Factory> table = [] {        \
      Registry<Factory> r(kind);                 \
      filler(r);                                 \
      return r;                                  \
    }();                                         \
    return table;                                \
  }

NORMEXP_TABLE(datasets, DatasetFactory, "dataset", register_builtin_datasets)
NORMEXP_TABLE(models, ModelFactory, "model", register_builtin_models)
NORMEXP_TABLE(norms, NormFactory, "norm scheme", register_builtin_norms)
NORMEXP_TABLE(optimizers, OptimizerFactory, "optimizer", register_builtin_optimizers)
NORMEXP_TABLE(lr_schedules, LrScheduleFactory, "lr schedule", register_builtin_lr_schedules)
NORMEXP_TABLE(noise_schedules, NoiseFactory, "noise schedule", register_builtin_noise_schedules)
NORMEXP_TABLE(tasks, TaskFactory, "task", register_builtin_tasks)
#undef NORMEXP_TABLE

std::vector<OptionSpec> data_common_options() {
  return {
      opt_string("augment", "standard",
                 "standard: random crop (4-pixel zero padding) + horizontal flip; fastaa: "
                 "Fast AutoAugment's policy (data.policy) on the uint8 image, then crop + flip; "
                 "randaugment: RandAugment (data.randaugment_*; timm's rand-m9-mstd0.5-inc1 by "
                 "default) on the uint8 image, then crop + flip; none",
                 {"standard", "fastaa", "randaugment", "none"}),
      // Added after the first results: hashed only when set, so older configs keep their runs.
      hashed_unless_default(opt_int("cutout", 0,
                                    "Cutout square side in pixels after normalization, 0 for "
                                    "none (Ikami et al. 2021's FastAA: 16)",
                                    at_least(0))),
      hashed_unless_default(opt_string(
          "policy", "fastaa_cifar10",
          "augment: fastaa policy: built-in fastaa_cifar10 (Fast AutoAugment's published "
          "CIFAR policy, configs/augment/) or a path to a policy JSON of that format")),
      opt_bool("normalize", true, "per-channel mean/std normalization (training-set statistics)"),
      hashed_unless_default(opt_int("randaugment_n", 2,
                                    "augment: randaugment: ops per image (Cubuk et al. 2020's N)",
                                    at_least(1))),
      hashed_unless_default(opt_float("randaugment_m", 9.0,
                                      "augment: randaugment: magnitude M on the 0-10 scale",
                                      between(0, 10))),
      hashed_unless_default(opt_float("randaugment_mstd", 0.5,
                                      "augment: randaugment: std of the per-op magnitude noise "
                                      "(timm's mstd; 0: M exactly)",
                                      at_least(0))),
      hashed_unless_default(opt_float("randaugment_p", 0.5,
                                      "augment: randaugment: probability each drawn op is applied",
                                      between(0, 1))),
      hashed_unless_default(opt_int("repeated_aug", 1,
                                    "repeated augmentation: each shuffled epoch takes n/r "
                                    "images r times each, copies in the same batch, each "
                                    "augmented on its own (Hoffer et al. 2020; DeiT: 3); 1: off",
                                    at_least(1))),
      hashed_unless_default(opt_float("random_erasing", 0.0,
                                      "probability per image of random erasing after "
                                      "normalization (Zhong et al. 2020; DeiT: 0.25); 0: off",
                                      between(0, 1))),
      hashed_unless_default(opt_float("mixup", 0.0,
                                      "mixup's Beta(a, a) parameter, each batch mixed with its "
                                      "reversal (Zhang et al. 2018; DeiT: 0.8); 0: off",
                                      at_least(0))),
      hashed_unless_default(opt_float("cutmix", 0.0,
                                      "CutMix's Beta(a, a) parameter (Yun et al. 2019; DeiT: "
                                      "1.0); 0: off",
                                      at_least(0))),
      hashed_unless_default(opt_float("mix_switch_prob", 0.5,
                                      "with mixup and cutmix both on: the probability that a "
                                      "batch uses CutMix (DeiT: 0.5)",
                                      between(0, 1))),
  };
}

std::vector<OptionSpec> train_options() {
  return {
      opt_int("epochs", 200, "training epochs (Ikami et al. 2021: 200)", at_least(1)),
      opt_int("batch_size", 128, "training batch size (Ikami et al. 2021: 128)", at_least(1)),
      opt_bool("drop_last", false, "drop the last incomplete training batch of each epoch"),
      opt_int("max_steps", 0, "stop after this many steps in total (0: no limit)", at_least(0)),
      opt_bool("bf16", false, "bf16 autocast (CUDA only; ignored with a warning on CPU)"),
      hashed_unless_default(opt_float("label_smoothing", 0.0,
                                      "cross-entropy against (1 - e) one-hot + e / classes "
                                      "(Szegedy et al. 2016; DeiT: 0.1); 0: plain",
                                      between(0, 1, false, true))),
      hashed_unless_default(opt_float("clip_grad_norm", 0.0,
                                      "scale the gradients to at most this global L2 norm "
                                      "before each update (on the device); 0: off",
                                      at_least(0))),
      unhashed(opt_int("checkpoint_every", 1,
                       "write checkpoint.pt every N epochs (0: only at the end and on interrupt)",
                       at_least(0))),
      unhashed(opt_int("eval_batch_size", 500, "evaluation batch size", at_least(1))),
      unhashed(opt_string("device", "auto", "auto picks CUDA when available; gpu is cuda",
                          backend::device_choices())),
      unhashed(opt_bool("channels_last", false,
                        "inputs and conv weights in channels_last layout (for CUDA tensor cores)")),
      unhashed(opt_string("cuda_graphs", "auto",
                          "capture the whole training step as a CUDA graph after 3 eager steps "
                          "and replay it (CUDA, SGD): auto uses graphs where possible, on also "
                          "warns when it cannot, off never; results match eager within bf16 "
                          "tolerance. On the H200, 1.05x (WRN-28-10 B128) to 4.5x (B4) "
                          "eager's speed",
                          {"off", "auto", "on"})),
      unhashed(opt_int("monitor_every", 0,
                       "every N steps record per-layer scales (output, gradient, weight and "
                       "gamma/beta RMS and max) into diagnostics.jsonl and the epoch's last "
                       "sample into history.jsonl, and check every layer's output and gradient "
                       "for non-finite values at every step (a divergence then names the layer "
                       "and step); 0: off (a divergence is then located after the fact)",
                       at_least(0))),
      unhashed(opt_int("threads", 0,
                       "CPU threads for LibTorch (0: all cores; each of N data-parallel ranks "
                       "on one machine: 1/N of them)",
                       at_least(0))),
      // Data-parallel runs. Added after the first results: hashed only when set.
      hashed_unless_default(opt_int(
          "world_size", 1,
          "data-parallel ranks the run trains on, taken from the launcher (torchrun, srun) "
          "when not set; batch_size stays the global batch (the paper's), each rank trains "
          "on its 1/world_size part; a run resumes only with the world size it started with",
          at_least(1))),
      hashed_unless_default(opt_bool(
          "sync_bn", false,
          "data-parallel runs: BatchNorm statistics of the whole global batch (all-reduced "
          "in every BN layer) instead of each rank's part")),
      unhashed(opt_int("dist_timeout_s", 300,
                       "data-parallel runs: a rank that waits this long for another in a "
                       "collective (or at the start) fails the run with a message",
                       at_least(1))),
      unhashed(opt_bool("deterministic", false, "deterministic algorithms only (slower on CUDA)")),
      unhashed(opt_string("progress", "auto",
                          "auto: a bar on a terminal, plain log lines otherwise",
                          {"auto", "bar", "plain", "none"})),
  };
}

std::vector<OptionSpec> output_options() {
  return {unhashed(opt_string("root", "results", "results go to <root>/<name>/<hash>/seed<k>/")),
          unhashed(opt_bool("tensorboard", true,
                            "classification runs also write events.out.tfevents.normexp (per-epoch "
                            "scalars and the HParams summary) for TensorBoard"))};
}

const Schema& experiment_schema() {
  static const Schema schema = [] {
    Schema s;
    auto selecting = [](std::string section, std::string kind, std::vector<OptionSpec> common,
                        auto& table, std::string def) {
      SectionSchema sec;
      sec.section = std::move(section);
      sec.kind = std::move(kind);
      sec.common = std::move(common);
      sec.components = options_by_name(table);
      sec.default_component = std::move(def);
      return sec;
    };
    s.sections.push_back(selecting("task", "task", {}, tasks(), "classify"));
    s.selector_section = "task";
    for (const auto& e : tasks().entries()) {
      auto reads = e.make.reads;
      reads.insert(reads.end(), {"train", "output"});
      s.selector_uses[e.name] = reads;
    }
    s.sections.push_back(selecting("data", "dataset", data_common_options(), datasets(), "synthetic"));
    s.sections.push_back(selecting("model", "model", {}, models(), "cnn9"));
    s.sections.push_back(selecting("norm", "norm scheme", {}, norms(), "bn"));
    s.sections.push_back(selecting("optim", "optimizer", {}, optimizers(), "sgd"));
    s.sections.push_back(selecting("schedule", "lr schedule", optim::schedule_common_options(),
                                   lr_schedules(), "cosine"));
    SectionSchema train;
    train.section = "train";
    train.kind = "train";
    train.common = train_options();
    s.sections.push_back(train);
    SectionSchema output;
    output.section = "output";
    output.kind = "output";
    output.common = output_options();
    s.sections.push_back(output);
    return s;
  }();
  return schema;
}

}  // namespace normexp::registry
