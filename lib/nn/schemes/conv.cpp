#include <torch/torch.h>

#include "nn/schemes/schemes.h"

namespace normexp::nn {

torch::nn::Conv2dOptions conv_options(const ConvSpec& s, bool bias) {
  return torch::nn::Conv2dOptions(s.in, s.out, s.kernel)
      .stride(s.stride)
      .padding(s.padding)
      .bias(bias);
}

void kaiming_fan_out_(const torch::Tensor& weight) {
  torch::nn::init::kaiming_normal_(weight, 0.0, torch::kFanOut, torch::kReLU);
}

torch::nn::AnyModule he_conv(const ConvSpec& s) {
  torch::nn::Conv2d conv(conv_options(s, /*bias=*/false));
  kaiming_fan_out_(conv->weight);
  return torch::nn::AnyModule(conv);
}

}  // namespace normexp::nn
