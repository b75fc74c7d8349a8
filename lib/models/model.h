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
};
using ModelPtr = std::shared_ptr<ModelImpl>;

// cnn9 (file 004 §4.1.1): Conv(3,64)x3 - AvgPool(2) - Conv(3,128)x3 - AvgPool(2) -
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

}  // namespace normexp::models
