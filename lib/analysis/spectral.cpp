#include "analysis/spectral.h"

#include <torch/torch.h>

#include <cmath>

namespace normexp::analysis {

namespace F = torch::nn::functional;

namespace {
// Power iteration for the top eigenvalue of a positive semi-definite AᵀA: returns sqrt of it.
template <class Apply>
double top_singular(Apply ata, torch::Tensor v, int64_t iters, double tol) {
  torch::NoGradGuard no_grad;
  v = v / v.norm();
  double prev = 0, sigma2 = 0;
  for (int64_t it = 0; it < iters; ++it) {
    torch::Tensor w = ata(v);
    sigma2 = w.norm().item<double>();  // ||AᵀA v|| with ||v|| = 1 -> λ_max at convergence
    if (sigma2 == 0) return 0;
    v = w / sigma2;
    if (it > 0 && std::abs(sigma2 - prev) <= tol * sigma2) break;
    prev = sigma2;
  }
  return std::sqrt(sigma2);
}

torch::Tensor conv(const torch::Tensor& x, const torch::Tensor& w, const Conv2dGeometry& g) {
  return F::conv2d(x, w,
                   F::Conv2dFuncOptions()
                       .stride({g.stride_h, g.stride_w})
                       .padding({g.pad_h, g.pad_w})
                       .dilation({g.dil_h, g.dil_w})
                       .groups(g.groups));
}

// The adjoint of conv() for inputs of spatial size (h, w).
torch::Tensor conv_adjoint(const torch::Tensor& y, const torch::Tensor& w, const Conv2dGeometry& g,
                           int64_t h, int64_t wd) {
  const int64_t kh = w.size(2), kw = w.size(3);
  // conv_transpose2d gives (H_out-1)*s - 2p + d*(k-1) + 1 (+ output_padding).
  const int64_t base_h = (y.size(2) - 1) * g.stride_h - 2 * g.pad_h + g.dil_h * (kh - 1) + 1;
  const int64_t base_w = (y.size(3) - 1) * g.stride_w - 2 * g.pad_w + g.dil_w * (kw - 1) + 1;
  return F::conv_transpose2d(y, w,
                             F::ConvTranspose2dFuncOptions()
                                 .stride({g.stride_h, g.stride_w})
                                 .padding({g.pad_h, g.pad_w})
                                 .output_padding({h - base_h, wd - base_w})
                                 .dilation({g.dil_h, g.dil_w})
                                 .groups(g.groups));
}
}  // namespace

double matrix_spectral_norm(const at::Tensor& w, int64_t iters, double tol) {
  auto m = w.detach().reshape({w.size(0), -1});
  auto gen = torch::randn({m.size(1)}, m.options());
  return top_singular([&](const torch::Tensor& v) { return m.t().mv(m.mv(v)); }, gen, iters, tol);
}

double conv2d_spectral_norm(const at::Tensor& weight, const std::vector<int64_t>& chw,
                            const Conv2dGeometry& g, int64_t iters, double tol) {
  auto w = weight.detach();
  auto v = torch::randn({1, chw[0], chw[1], chw[2]}, w.options());
  return top_singular(
      [&](const torch::Tensor& x) { return conv_adjoint(conv(x, w, g), w, g, chw[1], chw[2]); }, v,
      iters, tol);
}

at::Tensor conv2d_dense_matrix(const at::Tensor& weight, const std::vector<int64_t>& chw,
                               const Conv2dGeometry& g) {
  torch::NoGradGuard no_grad;
  const int64_t n = chw[0] * chw[1] * chw[2];
  // Column j is the conv of the j-th basis image: one batched conv over the identity.
  auto basis = torch::eye(n, weight.options()).view({n, chw[0], chw[1], chw[2]});
  auto out = conv(basis, weight.detach(), g);  // (n, C_out, H_out, W_out)
  return out.reshape({n, -1}).t().contiguous();
}

}  // namespace normexp::analysis
