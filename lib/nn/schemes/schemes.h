#pragma once
// Built-in normalization schemes. Each lives in its own file and is added to the registry
// with one line in lib/registry/builtin.cpp.

#include <memory>
#include <vector>

#include <torch/nn/options/conv.h>

#include "config/schema.h"
#include "nn/norm_scheme.h"

namespace normexp::nn {

// Shared by the schemes whose conv is a plain (or weight-standardized) convolution.
torch::nn::Conv2dOptions conv_options(const ConvSpec& spec, bool bias);
// He et al. (2015) normal init for ReLU nets, fan_out as in torchvision's ResNets.
void kaiming_fan_out_(const torch::Tensor& weight);
// The conv of the activation-normalized schemes (bn, gn, ln, bcn): no bias (the norm after it
// has β), He-normal fan_out weights.
torch::nn::AnyModule he_conv(const ConvSpec& spec);

// bn: conv (no bias) -> BatchNorm2d.
std::vector<config::OptionSpec> bn_options();
std::unique_ptr<NormScheme> make_bn(const config::Params& p);

// cwo (Ikami et al. 2021): constrained conv -> per-channel affine with noise injection.
std::vector<config::OptionSpec> cwo_options();
std::unique_ptr<NormScheme> make_cwo(const config::Params& p, NoiseSchedule noise);

// gn: conv (no bias) -> GroupNorm (Wu & He 2018). `groups` must divide every normalized
// layer's channels; the scheme reports the layer when it does not.
std::vector<config::OptionSpec> gn_options();
std::unique_ptr<NormScheme> make_gn(const config::Params& p);

// ws_bn, ws_gn (Qiao et al. 2019): weight-standardized conv (no bias) -> BatchNorm / GroupNorm.
std::vector<config::OptionSpec> ws_bn_options();
std::unique_ptr<NormScheme> make_ws_bn(const config::Params& p);
std::vector<config::OptionSpec> ws_gn_options();
std::unique_ptr<NormScheme> make_ws_gn(const config::Params& p);

// none: a plain conv with bias and nothing after it (the "plain" baseline of Ikami et al. 2021 Table 6).
std::vector<config::OptionSpec> none_options();
std::unique_ptr<NormScheme> make_none(const config::Params& p);

// ln: conv (no bias) -> LayerNorm over each sample's (C, H, W) (GroupNorm with one group, as
// in Wu & He 2018's LN baseline); in transformers LayerNorm over the token width.
std::vector<config::OptionSpec> ln_options();
std::unique_ptr<NormScheme> make_ln(const config::Params& p);

// bcn (Markou): conv (no bias) -> Band-Constrained Normalization over the channel vector of
// each position; in transformers BCN over the token width (nn/bcn.h).
std::vector<config::OptionSpec> bcn_options();
std::unique_ptr<NormScheme> make_bcn(const config::Params& p);

}  // namespace normexp::nn
