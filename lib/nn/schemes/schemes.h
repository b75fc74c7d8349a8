#pragma once
// Built-in normalization schemes. Each lives in its own file and is added to the registry
// with one line in lib/registry/builtin.cpp.

#include <memory>
#include <vector>

#include "config/schema.h"
#include "nn/norm_scheme.h"

namespace normexp::nn {

// bn: conv (no bias) -> BatchNorm2d.
std::vector<config::OptionSpec> bn_options();
std::unique_ptr<NormScheme> make_bn(const config::Params& p);

// cwo (file 004): constrained conv -> per-channel affine with noise injection.
std::vector<config::OptionSpec> cwo_options();
std::unique_ptr<NormScheme> make_cwo(const config::Params& p, NoiseSchedule noise);

}  // namespace normexp::nn
