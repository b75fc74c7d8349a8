#pragma once
// What the optimizer needs to know about each parameter: whether it decays, and whether it
// lives on a constraint set (cwo's projected step).

#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "nn/layers.h"

namespace normexp::nn {

enum class ParamRole {
  Weight,       // conv/linear weight: weight decay applies
  Constrained,  // weight on the cwo constraint set: centered gradient + projection
  NormAffine,   // gamma/beta of BN, GN, affine layers: no weight decay by default (Ikami et al. 2021 §4.1.1)
  Bias,         // biases: no weight decay by default
};

const char* role_name(ParamRole role);

struct ParamInfo {
  std::string name;
  torch::Tensor tensor;
  ParamRole role = ParamRole::Weight;
  ConstraintSpec constraint;  // meaningful for ParamRole::Constrained
};

// A parameter's or buffer's name in the model itself: decorators that wrap layers
// (train::MonitoredScheme's Watch) register them as "watched", and that segment is dropped, so
// names (optimizer state, checkpoints) do not depend on whether a run was monitored.
std::string canonical_name(const std::string& name);

// Walks the module tree (registration order) and classifies every trainable parameter.
std::vector<ParamInfo> classify_parameters(torch::nn::Module& model);

}  // namespace normexp::nn
