#include <torch/torch.h>

#include "models/model.h"

namespace normexp::models {

namespace {
// Basic block (ResNet-18/34): conv3x3(stride)-norm-ReLU-conv3x3-norm; bottleneck (50+):
// conv1x1-norm-ReLU-conv3x3(stride)-norm-ReLU-conv1x1(4x)-norm (stride on the 3x3, v1.5).
// Then + shortcut (identity, or 1x1 conv(stride) + norm where the shape changes), ReLU.
// The last norm of the branch is the scheme's residual_norm.
class V1BlockImpl : public torch::nn::Module {
 public:
  V1BlockImpl(int64_t in, int64_t width, int64_t stride, bool bottleneck, nn::NormScheme& scheme,
              const std::string& where) {
    const int64_t out = bottleneck ? width * 4 : width;
    auto add = [&](const std::string& name, torch::nn::AnyModule m) {
      register_module(name, m.ptr());
      branch_.push_back(m);
    };
    if (bottleneck) {
      add("conv1", scheme.conv({in, width, 1, 1, 0}));
      add("bn1", scheme.norm(width, where + ".bn1"));
      add("conv2", scheme.conv({width, width, 3, stride, 1}));
      add("bn2", scheme.norm(width, where + ".bn2"));
      add("conv3", scheme.conv({width, out, 1, 1, 0}));
      add("bn3", scheme.residual_norm(out, where + ".bn3"));
      relu_after_ = {1, 3};
    } else {
      add("conv1", scheme.conv({in, width, 3, stride, 1}));
      add("bn1", scheme.norm(width, where + ".bn1"));
      add("conv2", scheme.conv({width, width, 3, 1, 1}));
      add("bn2", scheme.residual_norm(width, where + ".bn2"));
      relu_after_ = {1};
    }
    if (stride != 1 || in != out) {
      down_conv_ = scheme.conv({in, out, 1, stride, 0});
      register_module("downsample_conv", down_conv_.ptr());
      down_norm_ = scheme.norm(out, where + ".downsample");
      register_module("downsample_norm", down_norm_.ptr());
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor h = x;
    for (size_t i = 0; i < branch_.size(); ++i) {
      h = branch_[i].forward(h);
      if (std::find(relu_after_.begin(), relu_after_.end(), i) != relu_after_.end())
        h = torch::relu(h);
    }
    auto s = down_conv_.is_empty() ? x : down_norm_.forward(down_conv_.forward(x));
    return torch::relu(h + s);
  }

 private:
  std::vector<torch::nn::AnyModule> branch_;
  std::vector<size_t> relu_after_;
  torch::nn::AnyModule down_conv_, down_norm_;
};
TORCH_MODULE(V1Block);

class ResNetV1Impl : public ModelImpl {
 public:
  ResNetV1Impl(const std::vector<int64_t>& blocks, bool bottleneck, bool cifar_stem,
               int64_t base, const data::DataShape& shape, nn::NormScheme& scheme)
      : cifar_stem_(cifar_stem) {
    conv1_ = cifar_stem ? scheme.conv({shape.channels, base, 3, 1, 1})
                        : scheme.conv({shape.channels, base, 7, 2, 3});
    register_module("conv1", conv1_.ptr());
    bn1_ = scheme.norm(base, "bn1");
    register_module("bn1", bn1_.ptr());
    int64_t in = base;
    for (size_t stage = 0; stage < blocks.size(); ++stage) {
      const std::string name = "layer" + std::to_string(stage + 1);
      const int64_t width = base << stage;
      torch::nn::Sequential layer;
      for (int64_t b = 0; b < blocks[stage]; ++b) {
        const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        layer->push_back(
            V1Block(in, width, stride, bottleneck, scheme, name + "." + std::to_string(b)));
        in = bottleneck ? width * 4 : width;
      }
      stages_.push_back(register_module(name, layer));
    }
    dim_ = in;
    classifier_ = scheme.classifier(in, shape.classes);
    register_module("fc", classifier_.ptr());
  }

  torch::Tensor features(torch::Tensor x) override {
    x = torch::relu(bn1_.forward(conv1_.forward(x)));
    if (!cifar_stem_) x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& stage : stages_) x = stage->forward(x);
    return x.mean({2, 3});
  }
  int64_t feature_dim() const override { return dim_; }
  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

 private:
  bool cifar_stem_;
  int64_t dim_ = 0;
  torch::nn::AnyModule conv1_, bn1_, classifier_;
  std::vector<torch::nn::Sequential> stages_;
};
}  // namespace

std::vector<config::OptionSpec> resnet_v1_options() {
  using namespace config;
  return {
      opt_int("depth", 50, "18, 34 (basic blocks), 50, 101 or 152 (bottlenecks)", at_least(18)),
      opt_string("stem", "imagenet",
                 "imagenet: 7x7/2 conv + 3x3/2 max pool (224-px); cifar: 3x3/1 conv, no pool",
                 {"imagenet", "cifar"}),
      opt_int("width", 64, "channels of the first stage (64 in He et al.; smaller for tests)",
              at_least(1)),
  };
}

ModelPtr make_resnet_v1(const config::Params& p, const data::DataShape& shape,
                        nn::NormScheme& scheme) {
  const int64_t depth = p.get_int("depth");
  std::vector<int64_t> blocks;
  switch (depth) {  // He et al. 2016, Table 1
    case 18: blocks = {2, 2, 2, 2}; break;
    case 34: blocks = {3, 4, 6, 3}; break;
    case 50: blocks = {3, 4, 6, 3}; break;
    case 101: blocks = {3, 4, 23, 3}; break;
    case 152: blocks = {3, 8, 36, 3}; break;
    default:
      throw p.error("depth", "is " + std::to_string(depth) + "; expected 18, 34, 50, 101 or 152");
  }
  auto model = std::make_shared<ResNetV1Impl>(blocks, depth >= 50, p.get_string("stem") == "cifar",
                                              p.get_int("width"), shape, scheme);
  return model;
}

}  // namespace normexp::models
