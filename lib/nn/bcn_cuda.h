#pragma once
// The CUDA half of BCN's fused autograd function (nn/bcn_function.h): host launchers for the
// kernels in bcn_cuda.cu, compiled only when LibTorch has CUDA (NORMEXP_WITH_CUDA). Internal
// to bcn_function.cpp: no CUDA types here, so a plain C++ file can include it, and no torch/nn
// headers, so nvcc does not compile them.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace normexp::nn::cuda_impl {

// The groups the magnitude LayerNorm takes its statistics over (bcn_function.cpp's Groups).
enum class BcnCudaMode {
  Identity,   // stats: none (m~ = m)
  PerVector,  // groups of one magnitude (stats: literal; stats: tokens with one vector a sample)
  Sample,     // a sample's P magnitudes (stats: tokens)
  Batch,      // all N*P magnitudes (stats: batch in training); also writes their mean, var
  Running,    // the running estimates (stats: batch in evaluation)
};

struct BcnCudaConfig {
  int64_t N = 0, P = 0, D = 0;  // N samples of P vectors of D features
  bool channels = false;        // (N, D, P) with feature stride P; else (N, P, D)
  BcnCudaMode mode = BcnCudaMode::Sample;
  bool tanh = true;  // bound: tanh, else clip
  double alpha = 0.2, eps = 1e-5, scale = 1.0;
};

struct BcnCudaForward {
  at::Tensor y;      // x's shape and dtype
  at::Tensor s;      // (N, P), x's dtype
  at::Tensor batch;  // (2) double: the magnitudes' mean and biased variance (mode Batch), else 0
  at::Tensor table;  // (6, N*P) in the accumulation type: what backward needs
  at::Tensor grho;   // per group, double: gamma / sqrt(var + eps)
};

struct BcnCudaGrads {
  at::Tensor dx;      // x's dtype
  at::Tensor dw, db;  // the affine's, weight's dtype; undefined without affine
  at::Tensor dmag;    // (2) double: dL/dgamma, dL/dbeta; undefined for Identity
};

// x: contiguous CUDA tensor of double, float, half or bfloat16. weight, bias: (D) in the
// accumulation type (double for double, else float), or undefined. mag_weight, mag_bias: (1)
// double on x's device (unused for Identity). running: (2) double [mean, var] on x's device
// (mode Running only). Everything is read on the device: no host synchronization, so the
// launches can be captured in a CUDA graph.
BcnCudaForward bcn_cuda_forward(const at::Tensor& x, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& mag_weight,
                                const at::Tensor& mag_bias, const at::Tensor& running,
                                const BcnCudaConfig& c);

// gy: contiguous, x's dtype and shape. table, grho: from bcn_cuda_forward.
BcnCudaGrads bcn_cuda_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& table, const at::Tensor& grho,
                               const BcnCudaConfig& c);

}  // namespace normexp::nn::cuda_impl
