#include "train/pipeline.h"

#include <torch/torch.h>

#include "core/error.h"
#include "backend/cuda_backend.h"

namespace normexp::train {

BatchPipeline pipeline_from_config(const config::Params& data) {
  BatchPipeline p;
  const std::string& mode = data.get_string("augment");
  p.augment = mode != "none";
  p.normalize = data.get_bool("normalize");
  p.cutout = data.get_int("cutout");
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

at::Tensor BatchPipeline::prepare(const at::Tensor& images, bool train) const {
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
  if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return x;
}

void use_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& t : model.parameters())
    if (t.dim() == 4) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
  for (auto& t : model.buffers())
    if (t.dim() == 4) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor evaluate_sums(models::ModelImpl& model, data::DeviceLoader& loader,
                         const BatchPipeline& pipeline, bool bf16) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  if (bf16) cuda::set_bf16_autocast(true);
  // Accumulated on the device; one host sync when the caller reads them.
  auto sums = torch::zeros({4}, torch::TensorOptions().dtype(torch::kDouble).device(loader.device()));
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
    sums += torch::stack({loss.to(torch::kDouble), hits.select(1, 0).sum().to(torch::kDouble),
                          hits.any(1).sum().to(torch::kDouble),
                          torch::scalar_tensor(static_cast<double>(labels.size(0)),
                                               torch::TensorOptions().dtype(torch::kDouble))
                              .to(sums.device())});
  }
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
  return r;
}

EvalResult evaluate(models::ModelImpl& model, data::DeviceLoader& loader,
                    const BatchPipeline& pipeline, bool bf16) {
  return eval_result(evaluate_sums(model, loader, pipeline, bf16));
}

}  // namespace normexp::train
