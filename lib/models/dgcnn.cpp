#include "models/dgcnn.h"

#include <torch/torch.h>

#include <algorithm>

namespace normexp::models {

at::Tensor knn(const at::Tensor& x, int64_t k) {
  // -||x_i - x_j||^2 = 2 x_i.x_j - |x_i|^2 - |x_j|^2; the k largest are the k nearest.
  const auto inner = torch::matmul(x.transpose(1, 2), x);  // (B, N, N)
  const auto sq = x.pow(2).sum(1, /*keepdim=*/true);       // (B, 1, N)
  const auto neg_dist = 2 * inner - sq - sq.transpose(1, 2);
  return std::get<1>(neg_dist.topk(k, /*dim=*/-1));
}

at::Tensor edge_features(const at::Tensor& x, const at::Tensor& idx) {
  const int64_t b = x.size(0), c = x.size(1), n = x.size(2), k = idx.size(2);
  const auto points = x.transpose(1, 2).contiguous();  // (B, N, C)
  const auto base = torch::arange(b, idx.options()).view({b, 1, 1}) * n;
  const auto neighbours =
      points.view({b * n, c}).index_select(0, (idx + base).view(-1)).view({b, n, k, c});
  const auto centre = points.unsqueeze(2).expand({b, n, k, c});
  return torch::cat({neighbours - centre, centre}, 3).permute({0, 3, 1, 2}).contiguous();
}

namespace {

class DgcnnImpl : public ModelImpl {
 public:
  DgcnnImpl(const std::vector<int64_t>& widths, int64_t k, int64_t emb, double dropout,
            const data::DataShape& shape, nn::NormScheme& scheme)
      : k_(k) {
    int64_t in = shape.channels, concat = 0;
    for (size_t l = 0; l < widths.size(); ++l) {
      const std::string where = "edge" + std::to_string(l + 1);
      edges_.push_back(block(scheme, 2 * in, widths[l], where));
      register_module(where, edges_.back());
      in = widths[l];
      concat += widths[l];
    }
    point_ = register_module("point", block(scheme, concat, emb, "point"));
    head1_ = register_module("head1", block(scheme, 2 * emb, 512, "head1"));
    head2_ = register_module("head2", block(scheme, 512, 256, "head2"));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    classifier_ = scheme.classifier(256, shape.classes);
    register_module("classifier", classifier_.ptr());
  }

  torch::Tensor forward(torch::Tensor x) override { return classifier_.forward(features(x)); }

  torch::Tensor features(torch::Tensor x) override {
    const int64_t b = x.size(0);
    x = x.reshape({b, x.size(1), -1});  // (B, C, N)
    const int64_t k = std::min<int64_t>(k_, x.size(2));
    std::vector<torch::Tensor> outs;
    for (auto& edge : edges_) {
      const auto idx = knn(x, k);
      x = std::get<0>(edge->forward(edge_features(x, idx)).max(3));  // (B, C', N)
      outs.push_back(x);
    }
    auto p = point_->forward(torch::cat(outs, 1).unsqueeze(3)).squeeze(3);  // (B, emb, N)
    auto pooled = torch::cat({std::get<0>(p.max(2)), p.mean(2)}, 1).view({b, -1, 1, 1});
    auto h = dropout_->forward(head1_->forward(pooled));
    h = dropout_->forward(head2_->forward(h));
    return h.flatten(1);
  }
  int64_t feature_dim() const override { return 256; }

 private:
  // conv 1x1 -> norm -> LeakyReLU(0.2).
  static torch::nn::Sequential block(nn::NormScheme& scheme, int64_t in, int64_t out,
                                     const std::string& where) {
    torch::nn::Sequential s;
    s->push_back(scheme.conv({in, out, 1, 1, 0}));
    s->push_back(scheme.norm(out, where + ".norm"));
    s->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    return s;
  }

  int64_t k_;
  std::vector<torch::nn::Sequential> edges_;
  torch::nn::Sequential point_{nullptr}, head1_{nullptr}, head2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::AnyModule classifier_;
};

}  // namespace

std::vector<config::OptionSpec> dgcnn_options() {
  using namespace config;
  return {
      opt_int("k", 20, "neighbours of each point in EdgeConv's graph (Wang et al. 2019: 20)",
              at_least(1)),
      opt_int_list("widths", {64, 64, 128, 256}, "EdgeConv output channels, layer by layer",
                   at_least(1)),
      opt_int("emb_dims", 1024, "per-point feature before pooling (Wang et al. 2019: 1,024)",
              at_least(1)),
      opt_float("dropout", 0.5, "dropout in the head", between(0, 1, true, false)),
  };
}

ModelPtr make_dgcnn(const config::Params& p, const data::DataShape& shape, nn::NormScheme& scheme) {
  const auto& widths = p.get_int_list("widths");
  if (widths.empty()) throw p.error("widths", "needs at least one EdgeConv layer");
  return std::make_shared<DgcnnImpl>(widths, p.get_int("k"), p.get_int("emb_dims"),
                                     p.get_float("dropout"), shape, scheme);
}

}  // namespace normexp::models
