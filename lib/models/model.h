#pragma once
#include <memory>
#include <vector>

#include <torch/nn/module.h>

#include "config/schema.h"
#include "data/dataset.h"
#include "nn/norm_scheme.h"

namespace normexp::models {

// A classifier: images (N, C, H, W) -> logits (N, classes).
class ModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The pooled representation the classifier reads, (N, feature_dim()): the encoder output
  // for SimCLR and linear evaluation. Models that do not expose one throw.
  virtual torch::Tensor features(torch::Tensor x);
  virtual int64_t feature_dim() const;
};
using ModelPtr = std::shared_ptr<ModelImpl>;

// cnn9 (Ikami et al. 2021 §4.1.1): Conv(3,64)x3 - AvgPool(2) - Conv(3,128)x3 - AvgPool(2) -
// Conv(3,256)x3 - GAP - Linear; each Conv is conv-norm-ReLU, the pair chosen by the scheme.
std::vector<config::OptionSpec> cnn9_options();
ModelPtr make_cnn9(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme);

// resnet (He et al. 2016, §4.2, CIFAR): conv3x3(16)-norm-ReLU, three stages of n basic
// blocks (16, 32, 64 channels; stride 2 entering stages 2 and 3), GAP, classifier; depth =
// 6n + 2. Basic block: conv3x3-norm-ReLU-conv3x3-norm, + shortcut, ReLU. Shortcut option A
// (parameter-free: subsample, zero-pad channels) by default, option B (1x1 conv + norm when the
// shape changes) on request.
std::vector<config::OptionSpec> resnet_options();
ModelPtr make_resnet(const config::Params& p, const data::DataShape& shape,
                     nn::NormScheme& scheme);

// wrn (Zagoruyko & Komodakis 2016): WRN-depth-width. conv3x3(16), three stages of
// n = (depth - 4)/6 pre-activation blocks (16k, 32k, 64k channels; strides 1, 2, 2), norm,
// ReLU, GAP, classifier. Block: norm-ReLU-conv3x3(stride)-norm-ReLU-dropout-conv3x3, + a 1x1
// conv shortcut on the pre-activated input when the shape changes, identity otherwise.
std::vector<config::OptionSpec> wrn_options();
ModelPtr make_wrn(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme);

// resnet_v1 (He et al. 2016, ImageNet layout; torchvision's v1.5 strides): ResNet-18/34 (basic
// blocks) and 50/101/152 (bottlenecks, expansion 4), stages of 64/128/256/512 base channels.
// stem imagenet: 7x7/2 conv, norm, ReLU, 3x3/2 max pool (224-px inputs); stem cifar: 3x3/1
// conv, norm, ReLU, no pool (32-px inputs, as SimCLR's CIFAR variant). Projection shortcuts
// (1x1 conv + norm) where the shape changes.
std::vector<config::OptionSpec> resnet_v1_options();
ModelPtr make_resnet_v1(const config::Params& p, const data::DataShape& shape,
                        nn::NormScheme& scheme);

// vit (Dosovitskiy et al. 2021): patch embedding (conv patch x patch, stride patch), class
// token, learned position embedding, `depth` pre-norm blocks (token norm - multi-head
// attention, token norm - MLP with GELU), a final token norm and a linear head on the class
// token. The token norms come from the scheme (ln, bcn, none). preset vit_b16 is ViT-B/16
// (patch 16, width 768, depth 12, 12 heads, MLP 3072) for 224-px inputs; custom uses the
// options (defaults: a ViT for CIFAR with 4-px patches).
std::vector<config::OptionSpec> vit_options();
ModelPtr make_vit(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme);

}  // namespace normexp::models
