#include "train/pipeline.h"

#include <torch/torch.h>

#include <cmath>

#include "backend/cuda_backend.h"
#include "core/error.h"
#include "data/fastaa.h"
#include "data/randaugment.h"

namespace normexp::train {

BatchPipeline pipeline_from_config(const config::Params& data) {
  BatchPipeline p;
  const std::string& mode = data.get_string("augment");
  p.augment = mode != "none";
  if (mode == "randaugment") {
    data::RandAugmentOptions o;
    o.layers = data.get_int("randaugment_n");
    o.magnitude = data.get_float("randaugment_m");
    o.magnitude_std = data.get_float("randaugment_mstd");
    o.prob = data.get_float("randaugment_p");
    p.policy = std::make_shared<const data::RandAugment>(o);
  }
  p.normalize = data.get_bool("normalize");
  p.cutout = data.get_int("cutout");
  p.random_erasing = data.get_float("random_erasing");
  p.mix.mixup_alpha = data.get_float("mixup");
  p.mix.cutmix_alpha = data.get_float("cutmix");
  p.mix.switch_prob = data.get_float("mix_switch_prob");
  if (mode == "fastaa") {
    try {
      p.policy = std::make_shared<const data::FastAutoAugment>(
          data::load_policy(data.get_string("policy")));
    } catch (const std::invalid_argument& e) {
      throw data.error("policy", e.what());
    } catch (const RunError& e) {
      throw data.error("policy", e.what());
    }
  }
  return p;
}

at::Tensor BatchPipeline::augment_uint8(const at::Tensor& images) const {
  at::Tensor x = images;
  if (policy) x = (*policy)(x);
  if (augment) x = data::random_hflip(data::random_crop(x, pad));
  return x;
}

namespace {
at::Tensor augment_points(const at::Tensor& x) {
  const auto opts = x.options();
  const auto theta = torch::rand({x.size(0), 1, 1, 1}, opts) * (2 * M_PI);
  const auto c = theta.cos(), s = theta.sin();
  const auto px = x.select(1, 0).unsqueeze(1), py = x.select(1, 1).unsqueeze(1),
             pz = x.select(1, 2).unsqueeze(1);
  const auto rotated = torch::cat({c * px + s * pz, py, -s * px + c * pz}, 1);
  return rotated + (torch::randn_like(rotated) * 0.01).clamp(-0.05, 0.05);
}
}  // namespace

at::Tensor BatchPipeline::prepare(const at::Tensor& images, bool train) const {
  if (points) return train && augment ? augment_points(images) : images;
  at::Tensor x = train ? augment_uint8(images) : images;
  if (normalize) {
    if (!scale_.defined() || scale_.device() != x.device())
      std::tie(scale_, shift_) = data::normalize_affine(mean, std, x.device());
    TORCH_CHECK(x.size(1) == scale_.size(1), "normalize: ", x.size(1), " channels but ",
                scale_.size(1), " means");
    x = torch::addcmul(shift_, x.to(torch::kFloat), scale_);
  } else {
    x = x.to(torch::kFloat).div_(255.0);
  }
  // Zero in normalized space (the training mean), as DeVries & Taylor's Cutout does.
  if (train && cutout > 0) x = data::random_cutout(x, cutout);
  if (train && random_erasing > 0) x = data::random_erasing(x, random_erasing);
  if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return x;
}

BatchPipeline run_pipeline(const config::Experiment& exp, data::Modality modality) {
  BatchPipeline p = pipeline_from_config(exp.section("data"));
  p.channels_last = exp.section("train").get_bool("channels_last");
  p.points = modality == data::Modality::Points;
  if (modality == data::Modality::Files) p.augment = false;
  return p;
}

void use_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& t : model.parameters())
    if (t.dim() == 4) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
  for (auto& t : model.buffers())
    if (t.dim() == 4) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor evaluate_sums(models::ModelImpl& model, data::BatchSource& loader,
                         const BatchPipeline& pipeline, bool bf16, int64_t classes) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  if (bf16) cuda::set_bf16_autocast(true);
  // Accumulated on the device; one host sync when the caller reads them.
  auto sums = torch::zeros({4 + 2 * classes},
                           torch::TensorOptions().dtype(torch::kDouble).device(loader.device()));
  int64_t images_seen = 0;  // counted on the host: no host-to-device copy per batch
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    auto [images, labels] = loader.batch(i);
    if (labels.size(0) == 0) continue;  // a data-parallel rank's empty part of a small batch
    auto logits = model.forward(pipeline.prepare(images, false)).to(torch::kFloat);
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    auto loss = torch::nn::functional::cross_entropy(
        logits, labels,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto top = std::get<1>(logits.topk(k, 1));
    auto hits = top.eq(labels.view({-1, 1}));
    const auto hit1 = hits.select(1, 0);
    sums.narrow(0, 0, 3) += torch::stack({loss.to(torch::kDouble),
                                          hit1.sum().to(torch::kDouble),
                                          hits.any(1).sum().to(torch::kDouble)});
    images_seen += labels.size(0);
    if (classes > 0) {
      sums.narrow(0, 4, classes).index_add_(0, labels, hit1.to(torch::kDouble));
      sums.narrow(0, 4 + classes, classes) += torch::bincount(labels, {}, classes);
    }
  }
  sums[3].fill_(static_cast<double>(images_seen));
  if (bf16) {
    cuda::set_bf16_autocast(false);
    cuda::clear_autocast_cache();
  }
  model.train(was_training);
  return sums;
}

EvalResult eval_result(const at::Tensor& sums) {
  const auto s = sums.to(torch::kCPU);
  const double* v = s.data_ptr<double>();
  EvalResult r;
  r.n = static_cast<int64_t>(v[3]);
  if (r.n == 0) return r;
  r.loss = v[0] / v[3];
  r.top1_err = 100.0 * (1.0 - v[1] / v[3]);
  r.top5_err = 100.0 * (1.0 - v[2] / v[3]);
  const int64_t classes = (s.numel() - 4) / 2;
  if (classes > 0) {
    double acc = 0;
    int64_t present = 0;
    for (int64_t c = 0; c < classes; ++c)
      if (v[4 + classes + c] > 0) {
        acc += v[4 + c] / v[4 + classes + c];
        ++present;
      }
    r.mean_class_acc = present > 0 ? 100.0 * acc / present : 0.0;
  }
  return r;
}

EvalResult evaluate(models::ModelImpl& model, data::BatchSource& loader,
                    const BatchPipeline& pipeline, bool bf16) {
  return eval_result(evaluate_sums(model, loader, pipeline, bf16));
}

}  // namespace normexp::train
