#pragma once
// mlp: a fully connected classifier on flattened images, for Than 2025's "MLP" and the
// "generalization gap vs number of normalization layers at fixed depth" experiment.
#include <vector>

#include "config/schema.h"
#include "data/dataset.h"
#include "models/model.h"
#include "nn/norm_scheme.h"

namespace normexp::models {

// Hidden layer k (widths `hidden`): scheme conv 1x1 -> scheme norm -> ReLU for the first
// `norm_layers` hidden layers, a plain 1x1 conv with bias -> ReLU for the rest; then the
// scheme's classifier. Hidden layers are 1x1 convolutions on (N, C*H*W, 1, 1) tensors, which
// are exactly linear layers, so every norm scheme (BN/GN/cwo/none build 2-D conv norms)
// works unchanged.
std::vector<config::OptionSpec> mlp_options();
ModelPtr make_mlp(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme);

}  // namespace normexp::models
