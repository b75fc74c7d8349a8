#pragma once
// From stored images to network inputs and back to numbers: the training-input pipeline
// (augmentation, normalization, layout) and one evaluation pass.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "config/experiment.h"
#include "config/schema.h"
#include "data/dataset.h"
#include "data/augment.h"
#include "data/image_policy.h"
#include "data/mix.h"
#include "models/model.h"

namespace normexp::train {

// The reference order of Ikami et al. 2021's FastAA (Fast AutoAugment's pipeline): policy on the uint8
// image -> random crop + flip -> normalization -> Cutout. Standard augmentation is the middle
// step alone. Random erasing, when asked, comes last (as in DeiT, after normalization).
struct BatchPipeline {
  // data.augment: fastaa (Fast AutoAugment's policy) or randaugment (else null).
  std::shared_ptr<const data::ImagePolicy> policy;
  bool augment = true;        // random crop (zero padding `pad`) + horizontal flip
  int64_t pad = 4;            // Ikami et al. 2021 / He et al.: 4-pixel padding for CIFAR
  bool normalize = true;
  std::vector<double> mean, std;
  int64_t cutout = 0;         // side of the Cutout square after normalization (0: none)
  double random_erasing = 0;  // probability per image of random erasing, after Cutout
  // Mixup / CutMix after all of the above: they mix labels too, so the training step applies
  // them (train/step.h), not prepare().
  data::MixOptions mix;
  bool channels_last = false;
  // Point clouds (data::Modality::Points, float (N, 3, P, 1)): `augment` is Ikami et al.
  // 2021 §4.2.1's (after PointNet's): a random rotation about the up axis (y) and per-point
  // jitter N(0, 0.01²) clipped to ±0.05; no crop, flip, normalization or Cutout.
  bool points = false;
  // uint8 (N,C,H,W) on the device -> float input; augmentation only when `train`.
  at::Tensor prepare(const at::Tensor& images, bool train) const;
  // The augmented uint8 images before normalization: policy, crop and flip, without the
  // Cutout that `prepare` applies after normalization (`normexp data preview` adds it).
  at::Tensor augment_uint8(const at::Tensor& images) const;

 private:
  mutable at::Tensor scale_, shift_;  // normalization, built once on the data's device
};

// The augmentation part of a pipeline from the data section (augment, cutout, policy); the
// caller adds mean/std and channels_last. A policy that cannot be loaded is a ConfigError
// at data.policy.
BatchPipeline pipeline_from_config(const config::Params& data);

// A run's pipeline for data of `modality` (Dataset::modality(), known before loading): the
// above plus train.channels_last; point clouds augmented as clouds; streamed image files
// (ImageNet) only normalized on the device, since the loader's threads crop and flip them.
// The caller adds mean/std. The trainer and `bench` both build theirs here, so a benchmark
// times the device work a run does.
BatchPipeline run_pipeline(const config::Experiment& exp, data::Modality modality);

// Puts the model's 4-d parameters and buffers (conv weights) in channels_last layout, as
// train.channels_last asks for the inputs: cuDNN then runs NHWC kernels without converting
// the weights at every call. Layout only: values and the optimizer's handles stay the same.
void use_channels_last(torch::nn::Module& model);

struct EvalResult {
  double loss = 0, top1_err = 0, top5_err = 0;  // errors in percent
  // Mean over the classes present of each class's top-1 accuracy, in percent (ModelNet40's
  // "mean class accuracy"); -1 when the pass did not count per class.
  double mean_class_acc = -1;
  int64_t n = 0;
};

// One pass over `loader` in eval mode without gradients. top-5 becomes top-k with
// k = min(5, classes).
EvalResult evaluate(models::ModelImpl& model, data::BatchSource& loader,
                    const BatchPipeline& pipeline, bool bf16);
// The same pass as sums on the device, float64 [loss, top-1 hits, top-k hits, images], then
// with `classes` > 0 each class's top-1 hits and images: what data-parallel ranks add up
// before eval_result turns them into means and errors.
at::Tensor evaluate_sums(models::ModelImpl& model, data::BatchSource& loader,
                         const BatchPipeline& pipeline, bool bf16, int64_t classes = 0);
EvalResult eval_result(const at::Tensor& sums);

}  // namespace normexp::train
