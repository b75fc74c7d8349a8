#include "models/mlp.h"

#include <torch/torch.h>

namespace normexp::models {

namespace {
class MlpImpl : public ModelImpl {
 public:
  MlpImpl(const std::vector<int64_t>& hidden, int64_t norm_layers, const data::DataShape& shape,
          nn::NormScheme& scheme) {
    torch::nn::Sequential features;
    int64_t in = shape.channels * shape.height * shape.width;
    for (size_t k = 0; k < hidden.size(); ++k) {
      const int64_t out = hidden[k];
      if (static_cast<int64_t>(k) < norm_layers) {
        features->push_back(scheme.conv({in, out, 1, 1, 0}));
        const std::string where = "features." + std::to_string(features->size());
        features->push_back(scheme.norm(out, where));
      } else {
        // Unnormalized layer: a plain linear map with bias and PyTorch's default init, as
        // the `none` scheme builds it.
        features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(true)));
      }
      features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
      in = out;
    }
    features_ = register_module("features", features);
    feature_dim_ = in;
    classifier_ = scheme.classifier(in, shape.classes);
    register_module("classifier", classifier_.ptr());
  }

  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

  torch::Tensor features(torch::Tensor x) override {
    return features_->forward(x.reshape({x.size(0), -1, 1, 1})).flatten(1);
  }
  int64_t feature_dim() const override { return feature_dim_; }

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::AnyModule classifier_;
  int64_t feature_dim_ = 0;
};
}  // namespace

std::vector<config::OptionSpec> mlp_options() {
  using namespace config;
  return {
      opt_int_list("hidden", {512, 512, 512}, "hidden layer widths (depth = entries + 1)",
                   at_least(1)),
      opt_int("norm_layers", -1,
              "how many hidden layers (counted from the input) get the scheme's conv + norm; "
              "the others are plain linear layers with bias. -1: all",
              at_least(-1)),
  };
}

ModelPtr make_mlp(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme) {
  const auto& hidden = p.get_int_list("hidden");
  if (hidden.empty()) throw p.error("hidden", "needs at least one hidden layer");
  int64_t norm_layers = p.get_int("norm_layers");
  if (norm_layers > static_cast<int64_t>(hidden.size()))
    throw p.error("norm_layers", "is " + std::to_string(norm_layers) + " but the model has only " +
                                     std::to_string(hidden.size()) + " hidden layers");
  if (norm_layers < 0) norm_layers = static_cast<int64_t>(hidden.size());
  auto model = std::make_shared<MlpImpl>(hidden, norm_layers, shape, scheme);
  return model;
}

}  // namespace normexp::models
