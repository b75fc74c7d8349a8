// ForwardingScheme, the base of every scheme decorator (monitoring, probes, sync BN): each
// layer kind a decorator does not override must reach the wrapped scheme's method of the same
// kind with the same arguments, and the module it returns must be the wrapped scheme's own. A
// decorator that let branch_scale or finalize fall back to NormScheme's defaults would build
// cwo's WideResNets without their branch scales, or leave cwo's noise levels unset.

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "nn/norm_scheme.h"

namespace normexp::nn {
namespace {

// Answers every call with a fresh Linear whose size encodes the call, and records it.
class RecordingScheme : public NormScheme {
 public:
  std::vector<std::string> calls;
  torch::nn::Module* finalized = nullptr;

  torch::nn::AnyModule conv(const ConvSpec& s) override { return made("conv", s.in, s.out); }
  torch::nn::AnyModule norm(int64_t c, const std::string& where) override {
    return made("norm " + where, c, 1);
  }
  torch::nn::AnyModule residual_norm(int64_t c, const std::string& where) override {
    return made("residual_norm " + where, c, 2);
  }
  torch::nn::AnyModule branch_scale(int64_t c, const std::string& where) override {
    return made("branch_scale " + where, c, 3);
  }
  torch::nn::AnyModule token_norm(int64_t dim, const std::string& where) override {
    return made("token_norm " + where, dim, 4);
  }
  torch::nn::AnyModule classifier(int64_t in, int64_t out) override {
    return made("classifier", in, out);
  }
  void finalize(torch::nn::Module& model) override {
    calls.push_back("finalize");
    finalized = &model;
  }

 private:
  torch::nn::AnyModule made(std::string call, int64_t in, int64_t out) {
    calls.push_back(std::move(call));
    return torch::nn::AnyModule(torch::nn::Linear(in, out));
  }
};

class PassThrough : public ForwardingScheme {
 public:
  using ForwardingScheme::ForwardingScheme;
};

int64_t out_features(const torch::nn::AnyModule& m) {
  return m.get<torch::nn::Linear>()->options.out_features();
}

TEST(ForwardingScheme, EveryLayerKindReachesTheWrappedSchemesOwnMethod) {
  auto inner = std::make_unique<RecordingScheme>();
  RecordingScheme& rec = *inner;
  PassThrough scheme(std::move(inner));

  EXPECT_EQ(out_features(scheme.conv(ConvSpec{5, 7, 3, 1, 1})), 7);
  EXPECT_EQ(out_features(scheme.norm(8, "a")), 1);
  EXPECT_EQ(out_features(scheme.residual_norm(8, "b")), 2);
  EXPECT_EQ(out_features(scheme.branch_scale(8, "c")), 3);
  EXPECT_EQ(out_features(scheme.token_norm(16, "d")), 4);
  EXPECT_EQ(out_features(scheme.classifier(16, 10)), 10);
  torch::nn::Sequential model(torch::nn::Linear(2, 2));
  scheme.finalize(*model);

  EXPECT_EQ(rec.calls, (std::vector<std::string>{"conv", "norm a", "residual_norm b",
                                                 "branch_scale c", "token_norm d", "classifier",
                                                 "finalize"}));
  EXPECT_EQ(rec.finalized, model.get());
}

}  // namespace
}  // namespace normexp::nn
