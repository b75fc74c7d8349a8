#include <torch/torch.h>

#include <cmath>

#include "models/model.h"

namespace normexp::models {

namespace {
class Cnn9Impl : public ModelImpl {
 public:
  Cnn9Impl(const std::vector<int64_t>& widths, const data::DataShape& shape,
           nn::NormScheme& scheme) {
    torch::nn::Sequential features;
    int64_t in = shape.channels;
    for (size_t stage = 0; stage < widths.size(); ++stage) {
      if (stage > 0) features->push_back(torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2)));
      for (int rep = 0; rep < 3; ++rep) {
        features->push_back(scheme.conv({in, widths[stage], 3, 1, 1}));
        const std::string where = "features." + std::to_string(features->size());  // the norm's
        features->push_back(scheme.norm(widths[stage], where));
        features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
        in = widths[stage];
      }
    }
    features_ = register_module("features", features);
    dim_ = in;
    classifier_ = scheme.classifier(in, shape.classes);
    register_module("classifier", classifier_.ptr());
  }

  torch::Tensor features(torch::Tensor x) override {
    return features_->forward(x).mean({2, 3});  // global average pooling
  }
  int64_t feature_dim() const override { return dim_; }
  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::AnyModule classifier_;
  int64_t dim_ = 0;
};
}  // namespace

std::vector<config::OptionSpec> cnn9_options() {
  using namespace config;
  return {opt_float("width", 1.0,
                    "channel multiplier: 1.0 is the paper's 64/128/256 (smaller for quick runs)",
                    greater_than(0))};
}

ModelPtr make_cnn9(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme) {
  const double width = p.get_float("width");
  std::vector<int64_t> widths;
  for (int64_t base : {64, 128, 256}) {
    const auto w = static_cast<int64_t>(std::lround(base * width));
    if (w < 1) throw p.error("width", "gives " + std::to_string(w) + " channels for a stage of " +
                                          std::to_string(base) + "; use a larger width");
    widths.push_back(w);
  }
  auto model = std::make_shared<Cnn9Impl>(widths, shape, scheme);
  return model;
}

}  // namespace normexp::models
