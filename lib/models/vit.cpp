#include <torch/torch.h>

#include "models/model.h"
#include "models/transformer.h"

namespace normexp::models {

namespace {
struct VitShape {
  int64_t patch, dim, depth, heads, mlp_dim;
  double drop_path = 0;  // the last block's stochastic-depth rate
};

class VitImpl : public ModelImpl {
 public:
  VitImpl(const VitShape& v, bool embed_norm, const data::DataShape& shape,
          nn::NormScheme& scheme)
      : dim_(v.dim) {
    patch_ = register_module(
        "patch_embed",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(shape.channels, v.dim, v.patch).stride(v.patch)));
    const int64_t tokens = (shape.height / v.patch) * (shape.width / v.patch) + 1;
    cls_token = register_parameter("cls_token", torch::zeros({1, 1, v.dim}));
    pos_embed = register_parameter("pos_embed", torch::zeros({1, tokens, v.dim}));
    trunc_normal_(pos_embed, 0.02);
    trunc_normal_(cls_token, 0.02);
    if (embed_norm) {
      // Markou §5.1 puts BCN "after embeddings" too; standard ViTs have no norm there.
      embed_norm_ = scheme.token_norm(v.dim, "embed_norm");
      register_module("embed_norm", embed_norm_.ptr());
    }
    for (int64_t i = 0; i < v.depth; ++i) {
      const std::string name = "blocks." + std::to_string(i);
      // Rates rise linearly from 0 at the first block to drop_path at the last (Huang et al.
      // 2016's linear decay rule, as DeiT and timm apply it).
      const double rate = v.depth > 1 ? v.drop_path * i / (v.depth - 1) : v.drop_path;
      blocks_.push_back(register_module("block" + std::to_string(i),
                                        Block(v.dim, v.heads, v.mlp_dim, scheme, name, rate)));
    }
    norm_ = scheme.token_norm(v.dim, "norm");
    register_module("norm", norm_.ptr());
    head_ = scheme.classifier(v.dim, shape.classes);
    register_module("head", head_.ptr());
  }

  torch::Tensor features(torch::Tensor x) override {
    x = patch_->forward(x).flatten(2).transpose(1, 2);  // (N, patches, dim)
    x = torch::cat({cls_token.expand({x.size(0), -1, -1}).to(x.dtype()), x}, 1) + pos_embed;
    if (!embed_norm_.is_empty()) x = embed_norm_.forward(x);
    for (auto& b : blocks_) x = b->forward(x);
    return norm_.forward(x).select(1, 0);  // the class token
  }
  int64_t feature_dim() const override { return dim_; }
  torch::Tensor forward(torch::Tensor x) override { return head_.forward(features(x)); }

  std::vector<Block>& blocks() { return blocks_; }
  torch::Tensor cls_token, pos_embed;

 private:
  int64_t dim_;
  torch::nn::Conv2d patch_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::AnyModule embed_norm_, norm_, head_;
};
}  // namespace

std::vector<config::OptionSpec> vit_options() {
  using namespace config;
  return {
      opt_string("preset", "custom",
                 "custom (the options below) or vit_b16: ViT-B/16 (patch 16, width 768, depth "
                 "12, 12 heads, MLP 3072; Dosovitskiy et al. 2021) — patch, dim, depth, heads "
                 "and mlp_dim are then ignored",
                 {"custom", "vit_b16"}),
      opt_int("patch", 4, "patch size in pixels (4 for 32-px CIFAR images)", at_least(1)),
      opt_int("dim", 192, "token width", at_least(1)),
      opt_int("depth", 6, "transformer blocks", at_least(1)),
      opt_int("heads", 6, "attention heads (must divide dim)", at_least(1)),
      opt_int("mlp_dim", 768, "hidden width of each block's MLP", at_least(1)),
      opt_bool("embed_norm", false, "a token norm right after the patch + position embedding"),
      hashed_unless_default(opt_float(
          "drop_path", 0.0,
          "stochastic depth: the last block's rate of dropping a sample's residual branch, "
          "rising linearly from 0 at the first block (DeiT-B: 0.1); applies to the preset too",
          between(0, 1, false, true))),
  };
}

ModelPtr make_vit(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme) {
  VitShape v{p.get_int("patch"), p.get_int("dim"), p.get_int("depth"), p.get_int("heads"),
             p.get_int("mlp_dim")};
  if (p.get_string("preset") == "vit_b16") v = {16, 768, 12, 12, 3072};
  v.drop_path = p.get_float("drop_path");
  if (shape.height % v.patch != 0 || shape.width % v.patch != 0)
    throw p.error(p.get_string("preset") == "vit_b16" ? "preset" : "patch",
                  "patch size " + std::to_string(v.patch) + " does not divide the " +
                      std::to_string(shape.height) + "x" + std::to_string(shape.width) +
                      " images");
  if (v.dim % v.heads != 0)
    throw p.error("heads", std::to_string(v.heads) + " heads do not divide width " +
                               std::to_string(v.dim));
  auto model = std::make_shared<VitImpl>(v, p.get_bool("embed_norm"), shape, scheme);
  return model;
}

}  // namespace normexp::models
