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

}  // namespace normexp::models
