#pragma once
// Spectral norms of layers, for the Lipschitz bounds of Than 2025: the product of the
// layers' operator norms bounds an unnormalized network's Lipschitz constant (Than 2025,
// "the product of weight norms grows with depth"). For a convolution the operator is the
// convolution itself on the layer's real input shape (padding and stride included), not
// the reshaped (out, in*k*k) kernel matrix, whose norm is only an estimate of it.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::analysis {

// Largest singular value of a matrix (rows = outputs) by power iteration on WᵀW.
double matrix_spectral_norm(const at::Tensor& w, int64_t iters = 100, double tol = 1e-7);

struct Conv2dGeometry {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

// Operator norm of x -> conv2d(x, weight) on inputs of shape (C, H, W): power iteration on
// AᵀA with A = conv2d and Aᵀ = conv_transpose2d (output_padding chosen so that Aᵀ returns
// the input shape, which makes it the exact adjoint).
double conv2d_spectral_norm(const at::Tensor& weight, const std::vector<int64_t>& input_chw,
                            const Conv2dGeometry& g, int64_t iters = 100, double tol = 1e-7);

// The conv operator as a dense (C_out*H_out*W_out, C*H*W) matrix (tiny convs; tests).
at::Tensor conv2d_dense_matrix(const at::Tensor& weight, const std::vector<int64_t>& input_chw,
                               const Conv2dGeometry& g);

}  // namespace normexp::analysis
