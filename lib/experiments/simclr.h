#pragma once
// Markou §5.3: contrastive pretraining (SimCLR, Chen et al. 2020) with NT-Xent, then the
// two standard read-outs of the frozen encoder: kNN accuracy and linear evaluation.
//
// Encoder: any registered model's pooled features (models::ModelImpl::features) built with
// the `norm` scheme, so BN vs BCN is one key. Projection head: Linear-ReLU-Linear (SimCLR
// v1; no norm by default, so only the encoder's normalization differs between runs), or with
// task.head_bn Linear-BatchNorm-ReLU-Linear, as SimCLR's code: an encoder whose norm does not
// center features over the batch (LayerNorm, whole-map BCN) feeds the head features that share
// a large common part, the projections start nearly equal and NT-Xent sits at ln(2B - 1)
// (measured on Fashion-MNIST; README, "Band-Constrained Normalization").
// Views: two independent augmentations of every image, batched on the device: random resized
// crop (scale [crop_min, 1], aspect ratio [3/4, 4/3], bilinear), horizontal flip, colour
// jitter with probability 0.8 (brightness, contrast, saturation 0.4 each, applied in that
// order; SimCLR's hue jitter is left out; grey images get brightness and contrast), grayscale
// with probability 0.2 (colour images), then the data's per-channel normalization. No blur
// (SimCLR's CIFAR setting).
// kNN: cosine similarity of L2-normalized encoder features of the (unaugmented) test images
// to the training images, k neighbours voting with weights exp(sim / 0.1) (Wu et al. 2018).
// Linear evaluation: a linear classifier on frozen, unaugmented features, trained with SGD.
// The history starts with epoch 0: the untrained encoder's kNN accuracy (results.knn_acc_init),
// the baseline pretraining has to beat.
// "Epochs to target": the first epoch whose kNN accuracy reaches task.target_acc (the paper
// does not say which accuracy it tracks; kNN is what can be measured every few epochs).
//
// Resumable: checkpoint.pt (encoder and head, optimizer state, position, the epoch's data
// order, RNG states) is written every train.checkpoint_every epochs, at the end of
// pretraining and when the run is interrupted (mid-epoch too); --resume continues from it to
// the result of a run never stopped. The last one holds the pretrained encoder.

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>

#include "config/schema.h"
#include "experiments/task.h"

namespace normexp::experiments {

// NT-Xent over 2N projections: rows i and i + N are the positive pair; every other row of the
// batch is a negative. z need not be normalized (it is, here).
at::Tensor nt_xent(const at::Tensor& z1, const at::Tensor& z2, double temperature);

// Weighted kNN accuracy (%) of `test` features against `train` features (both L2-normalized
// rows); labels int64. Computed in chunks of test rows.
double knn_accuracy(const at::Tensor& train, const at::Tensor& train_labels,
                    const at::Tensor& test, const at::Tensor& test_labels, int64_t k,
                    int64_t classes, double temperature = 0.1);

// Rows scaled to unit length, in float64. Pooled ReLU features of a net without per-batch
// centering all point nearly one way (the cnn9's untrained features on Fashion-MNIST: mean
// pairwise cosine 1 - 1e-6), so the cosines that tell images apart differ in the 6th-9th digit:
// float32 (spacing 6e-8 near 1) turned the untrained encoder's kNN accuracy from 75% into 67%.
at::Tensor unit_rows(const at::Tensor& features);

// Mean cosine similarity over all pairs of distinct rows of an L2-normalized (N, D) matrix:
// 1 when every row points the same way, about 0 for directions spread at random.
double mean_pairwise_cosine(const at::Tensor& unit_rows);

// Fraction of an (N, D) matrix's variance across rows (the trace of its covariance) that lies
// along the rows' mean direction: near 1 when the rows differ mainly by a per-row scale, about
// 1/D for isotropic spread, 0 for rows that all have the same length along the mean. After
// SimCLR on Fashion-MNIST a whole-map BCN encoder's test features sit at 0.67-0.74 (each
// sample scaled by its own band factor s in [1 - alpha, 1]), BN's at 0.07-0.18 (README,
// "Why whole-map BCN encoders do not learn SimCLR").
double radial_variance_fraction(const at::Tensor& features);

// The projection head: Linear-ReLU-Linear, or with batch_norm Linear (no bias)-BatchNorm-
// ReLU-Linear (SimCLR's code).
torch::nn::Sequential make_projection_head(int64_t features, int64_t hidden, int64_t out,
                                           bool batch_norm);

// Two-view augmentation of uint8 (N, C, H, W) images to float, before normalization.
at::Tensor simclr_view(const at::Tensor& images, double crop_min);

std::vector<config::OptionSpec> simclr_options();
TaskResult run_simclr(TaskContext& ctx);
void check_simclr(const config::Experiment& exp, const train::ComponentFactory& components);

}  // namespace normexp::experiments
