#pragma once
// DGCNN (Wang et al. 2019, "Dynamic Graph CNN for Learning on Point Clouds"), the point-cloud
// classifier of Ikami et al. 2021 Table 5 (ModelNet40). Four EdgeConv layers (64-64-128-256)
// on a k-nearest-neighbour graph recomputed in each layer's feature space (k = 20); their
// outputs concatenated (512) into a 1x1 conv to a 1,024-d point feature; max and mean pooling
// over the points (2,048); a head 512-256 with dropout 0.5; the scheme's classifier.
//
// Every conv and norm comes from the norm scheme, as in every model: EdgeConv's shared MLP is
// a 1x1 conv on the (B, 2C, N, k) edge features, the head's linear layers are 1x1 convs on
// (B, C, 1, 1), so BN, GN, WS and cwo replace DGCNN's BatchNorm layers "in the same way as
// the image classification experiments" (Ikami et al. 2021 §4.2.1). Activations are
// LeakyReLU(0.2), as in DGCNN.
//
// Input: points as (B, 3, N, 1) (data.name: modelnet40); any (B, C, H, W) is read as H*W
// points of C coordinates, so the model-wide tests can feed it images.
#include <vector>

#include <ATen/core/Tensor.h>

#include "config/schema.h"
#include "data/dataset.h"
#include "models/model.h"
#include "nn/norm_scheme.h"

namespace normexp::models {

// Indices (B, N, k) of each point's k nearest points (itself included) in feature space,
// x: (B, C, N). Euclidean distance; ties broken as topk breaks them.
at::Tensor knn(const at::Tensor& x, int64_t k);
// EdgeConv's edge features (B, 2C, N, k): [x_j - x_i, x_i] for the k neighbours j of i.
at::Tensor edge_features(const at::Tensor& x, const at::Tensor& idx);

std::vector<config::OptionSpec> dgcnn_options();
ModelPtr make_dgcnn(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme);

}  // namespace normexp::models
