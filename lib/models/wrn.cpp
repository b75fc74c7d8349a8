// Wide ResNet (Zagoruyko & Komodakis 2016, "Wide Residual Networks"): WRN-depth-width with
// pre-activation basic blocks B(3,3).
#include <torch/torch.h>

#include "models/model.h"

namespace normexp::models {

namespace {
// norm-ReLU-conv3x3(stride)-norm-ReLU-dropout-conv3x3[-scale], + shortcut. When the shape changes,
// the shortcut is a 1x1 conv on the pre-activated input (as in the authors' reference code);
// otherwise it is the raw input. Registered in forward order; the shortcut conv has no norm
// after it, so its place does not affect the noise-layer numbering.
class WideBlockImpl : public torch::nn::Module {
 public:
  WideBlockImpl(int64_t in, int64_t out, int64_t stride, double dropout, nn::NormScheme& scheme,
                const std::string& where)
      : dropout_(dropout) {
    bn1_ = scheme.norm(in, where + ".bn1");
    register_module("bn1", bn1_.ptr());
    conv1_ = scheme.conv({in, out, 3, stride, 1});
    register_module("conv1", conv1_.ptr());
    bn2_ = scheme.norm(out, where + ".bn2");
    register_module("bn2", bn2_.ptr());
    conv2_ = scheme.conv({out, out, 3, 1, 1});
    register_module("conv2", conv2_.ptr());
    // The branch ends in conv2, with no norm after it: a scheme that needs the branch to start
    // small (cwo) scales it here. Not at bn2: a zero gamma there is followed by a ReLU, whose
    // gradient at 0 is 0, so neither the scale nor the convs would ever learn.
    scale_ = scheme.branch_scale(out, where + ".scale");
    if (!scale_.is_empty()) register_module("scale", scale_.ptr());
    if (in != out || stride != 1) {
      shortcut_ = scheme.conv({in, out, 1, stride, 0});
      register_module("shortcut", shortcut_.ptr());
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    // Out of place: with the `none` scheme bn1 is the identity, and x is still needed below.
    auto pre = torch::relu(bn1_.forward(x));
    auto out = bn2_.forward(conv1_.forward(pre)).relu_();
    if (dropout_ > 0.0) out = torch::dropout(out, dropout_, is_training());
    out = conv2_.forward(out);
    if (!scale_.is_empty()) out = scale_.forward(out);
    return out + (shortcut_.is_empty() ? x : shortcut_.forward(pre));
  }

 private:
  double dropout_;
  torch::nn::AnyModule bn1_, conv1_, bn2_, conv2_, scale_, shortcut_;
};
TORCH_MODULE(WideBlock);

class WideResNetImpl : public ModelImpl {
 public:
  WideResNetImpl(int64_t blocks_per_stage, int64_t width, double dropout,
                 const data::DataShape& shape, nn::NormScheme& scheme) {
    conv1_ = scheme.conv({shape.channels, 16, 3, 1, 1});
    register_module("conv1", conv1_.ptr());
    int64_t in = 16;
    const int64_t strides[] = {1, 2, 2};
    for (int stage = 0; stage < 3; ++stage) {
      const std::string name = "layer" + std::to_string(stage + 1);
      const int64_t out = (16 << stage) * width;  // 16k, 32k, 64k (Table 1)
      torch::nn::Sequential layer;
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        layer->push_back(WideBlock(in, out, b == 0 ? strides[stage] : 1, dropout, scheme,
                                   name + "." + std::to_string(b)));
        in = out;
      }
      stages_.push_back(register_module(name, layer));
    }
    bn_ = scheme.norm(in, "bn");
    register_module("bn", bn_.ptr());
    dim_ = in;
    classifier_ = scheme.classifier(in, shape.classes);
    register_module("classifier", classifier_.ptr());
  }

  torch::Tensor features(torch::Tensor x) override {
    x = conv1_.forward(x);
    for (auto& stage : stages_) x = stage->forward(x);
    x = bn_.forward(x).relu_();  // in place is safe: x is the last block's fresh sum
    return x.mean({2, 3});       // global average pooling
  }
  int64_t feature_dim() const override { return dim_; }
  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

 private:
  torch::nn::AnyModule conv1_, bn_, classifier_;
  std::vector<torch::nn::Sequential> stages_;
  int64_t dim_ = 0;
};
}  // namespace

std::vector<config::OptionSpec> wrn_options() {
  using namespace config;
  return {
      opt_int("depth", 28, "6n + 4 layers, n blocks per stage (Ikami et al. 2021: WRN-28-10)", at_least(10)),
      opt_int("width", 10, "widening factor k: stages of 16k, 32k, 64k channels", at_least(1)),
      opt_float("dropout", 0.0, "dropout rate between the two convs of every block",
                between(0, 1, false, true)),
  };
}

ModelPtr make_wrn(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme) {
  const int64_t depth = p.get_int("depth");
  if ((depth - 4) % 6 != 0)
    throw p.error("depth", "is " + std::to_string(depth) +
                               "; a WRN has depth 6n + 4 (10, 16, 22, 28, 40, ...)");
  auto model = std::make_shared<WideResNetImpl>((depth - 4) / 6, p.get_int("width"),
                                                p.get_float("dropout"), shape, scheme);
  return model;
}

}  // namespace normexp::models
