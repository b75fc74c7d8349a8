#pragma once
// The pieces shared by the synthetic experiments of Akbar (lib/experiments/geometry.h): a
// functional float64 fully connected net with BN, LN or WN, random teachers, full-batch
// gradient descent and the JSON helpers of their results.

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <nlohmann/json.hpp>

namespace normexp::experiments::dense {

constexpr double kPi = 3.14159265358979323846;
// Every experiment trains the same problem twice: with BN and without (same data, same init).
inline const char* const kArms[] = {"bn", "plain"};

c10::TensorOptions f64();
at::Tensor randn(at::Generator& gen, std::vector<int64_t> shape);

// One full-batch gradient-descent step; gradients are zeroed for the next one.
void gd_step(const std::vector<at::Tensor>& params, double lr);
at::Tensor logistic_loss(const at::Tensor& f, const at::Tensor& y);
double accuracy_pm1(const at::Tensor& f, const at::Tensor& y);
bool finite(double v);
nlohmann::json nullable(std::optional<double> v);
nlohmann::json nullable(std::optional<int64_t> v);

enum class Norm { None, Bn, Ln, Wn };

// A fully connected ReLU network in float64, functional so that the symmetry checks and the
// Hessian see exactly the parameters the paper's statements are about. Hidden layers are
// linear -> [norm] -> ReLU, the last layer linear. BN uses the statistics of the batch it
// is given in training mode (full batch here) and those of the last training forward in
// eval mode; LN normalizes each sample over the layer's units; WN reparameterizes every
// weight row as w_i = g_i v_i/‖v_i‖ (w holds v). γ, β: BN/LN affine, one per unit.
struct DenseNet {
  Norm norm = Norm::None;
  double eps = 1e-5;
  std::vector<at::Tensor> w, b, gamma, beta, g, mean, var;

  size_t layers() const { return w.size(); }
  at::Tensor weight(size_t l) const;
  at::Tensor forward(const at::Tensor& x, bool train);  // (N, out)
  at::Tensor out1(const at::Tensor& x, bool train);     // (N,) of a one-output net
  std::vector<at::Tensor> params() const;
};

// He-normal weights (std sqrt(2/fan_in); the linear output layer sqrt(1/fan_in)) times
// `scale`, zero biases, γ = 1, β = 0. Hidden layers of BN/LN nets have a bias only with
// `bias_before_norm` (Akbar Exp. 2: "no biases in those layers").
DenseNet make_dense(const std::vector<int64_t>& sizes, Norm norm, bool bias_before_norm,
                    double scale, double eps, at::Generator& gen);

// Targets of a random one-hidden-layer teacher (so that a linear model cannot fit them).
at::Tensor teacher(const at::Tensor& x, int64_t hidden, bool relu, at::Generator& gen);
// Binary labels in {-1, +1}: the teacher's output thresholded at its median (balanced).
at::Tensor teacher_labels(const at::Tensor& x, int64_t hidden, at::Generator& gen);

}  // namespace normexp::experiments::dense
