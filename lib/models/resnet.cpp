// ResNet for CIFAR (He et al. 2016, "Deep Residual Learning for Image Recognition", §4.2).
#include <torch/torch.h>

#include "models/model.h"

namespace normexp::models {

namespace {
enum class Shortcut { A, B };

// conv3x3-norm-ReLU-conv3x3-norm, + shortcut, ReLU. Modules are registered in forward order
// (the linear noise schedule numbers norm layers by registration order); option B's
// projection runs in parallel with the residual branch and is registered last, as in
// torchvision's `downsample`.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, Shortcut shortcut,
                 nn::NormScheme& scheme, const std::string& where)
      : in_(in), out_(out), stride_(stride) {
    conv1_ = scheme.conv({in, out, 3, stride, 1});
    register_module("conv1", conv1_.ptr());
    bn1_ = scheme.norm(out, where + ".bn1");
    register_module("bn1", bn1_.ptr());
    conv2_ = scheme.conv({out, out, 3, 1, 1});
    register_module("conv2", conv2_.ptr());
    bn2_ = scheme.residual_norm(out, where + ".bn2");
    register_module("bn2", bn2_.ptr());
    if (shortcut == Shortcut::B && (stride != 1 || in != out)) {
      torch::nn::Sequential projection;
      projection->push_back(scheme.conv({in, out, 1, stride, 0}));
      projection->push_back(scheme.norm(out, where + ".shortcut.1"));
      projection_ = register_module("shortcut", projection);
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    // In-place ReLUs only on fresh conv/norm outputs (never on x, which the shortcut reuses).
    auto out = bn1_.forward(conv1_.forward(x)).relu_();
    out = bn2_.forward(conv2_.forward(out));
    return (out + shortcut(x)).relu_();
  }

 private:
  torch::Tensor shortcut(const torch::Tensor& x) {
    if (!projection_.is_empty()) return projection_->forward(x);
    if (stride_ == 1 && in_ == out_) return x;
    // Option A (§4.2: "identity shortcuts in all cases"): subsample x[:, :, ::s, ::s] and
    // append zero channels for the increased width; no parameters. Where the zeros go is
    // immaterial (the residual branch's channels can be in any order), so they go last.
    auto y = x;
    if (stride_ != 1) y = y.slice(2, 0, y.size(2), stride_).slice(3, 0, y.size(3), stride_);
    if (out_ > in_) y = torch::constant_pad_nd(y, {0, 0, 0, 0, 0, out_ - in_});
    return y;
  }

  int64_t in_, out_, stride_;
  torch::nn::AnyModule conv1_, bn1_, conv2_, bn2_;
  torch::nn::Sequential projection_{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNetImpl : public ModelImpl {
 public:
  ResNetImpl(int64_t blocks_per_stage, Shortcut shortcut, const data::DataShape& shape,
             nn::NormScheme& scheme) {
    conv1_ = scheme.conv({shape.channels, 16, 3, 1, 1});
    register_module("conv1", conv1_.ptr());
    bn1_ = scheme.norm(16, "bn1");
    register_module("bn1", bn1_.ptr());
    int64_t in = 16;
    const int64_t widths[] = {16, 32, 64};  // §4.2: {16, 32, 64} filters on 32/16/8 maps
    for (int stage = 0; stage < 3; ++stage) {
      const std::string name = "layer" + std::to_string(stage + 1);
      torch::nn::Sequential layer;
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        layer->push_back(BasicBlock(in, widths[stage], stride, shortcut, scheme,
                                    name + "." + std::to_string(b)));
        in = widths[stage];
      }
      stages_.push_back(register_module(name, layer));
    }
    classifier_ = scheme.classifier(in, shape.classes);
    register_module("classifier", classifier_.ptr());
  }

  torch::Tensor features(torch::Tensor x) override {
    x = bn1_.forward(conv1_.forward(x)).relu_();
    for (auto& stage : stages_) x = stage->forward(x);
    return x.mean({2, 3});  // global average pooling
  }
  int64_t feature_dim() const override { return 64; }
  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

 private:
  torch::nn::AnyModule conv1_, bn1_, classifier_;
  std::vector<torch::nn::Sequential> stages_;
};
}  // namespace

std::vector<config::OptionSpec> resnet_options() {
  using namespace config;
  return {
      opt_int("depth", 110, "6n + 2 layers, n basic blocks per stage (Ikami et al. 2021: 110)",
              at_least(8)),
      opt_string("shortcut", "A",
                 "A: parameter-free subsample + zero-pad shortcut when the shape changes "
                 "(He et al. 2016 §4.2); B: 1x1 conv + norm there",
                 {"A", "B"}),
  };
}

ModelPtr make_resnet(const config::Params& p, const data::DataShape& shape,
                     nn::NormScheme& scheme) {
  const int64_t depth = p.get_int("depth");
  if ((depth - 2) % 6 != 0)
    throw p.error("depth", "is " + std::to_string(depth) +
                               "; a CIFAR ResNet has depth 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...)");
  const auto shortcut = p.get_string("shortcut") == "B" ? Shortcut::B : Shortcut::A;
  auto model = std::make_shared<ResNetImpl>((depth - 2) / 6, shortcut, shape, scheme);
  return model;
}

}  // namespace normexp::models
