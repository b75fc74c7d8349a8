#include "analysis/flops.h"

#include <ATen/record_function.h>
#include <ATen/core/ivalue.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace normexp::analysis {

namespace {

enum class Kind { None, Conv, Linear, MatMul, AddMatMul };

Kind kind_of(const char* name) {
  static const std::map<std::string, Kind> kinds = {
      {"aten::conv1d", Kind::Conv},         {"aten::conv2d", Kind::Conv},
      {"aten::conv3d", Kind::Conv},         {"aten::convolution", Kind::Conv},
      {"aten::_convolution", Kind::Conv},   {"aten::cudnn_convolution", Kind::Conv},
      {"aten::mkldnn_convolution", Kind::Conv}, {"aten::_convolution_mode", Kind::Conv},
      {"aten::linear", Kind::Linear},       {"aten::matmul", Kind::MatMul},
      {"aten::mm", Kind::MatMul},           {"aten::bmm", Kind::MatMul},
      {"aten::addmm", Kind::AddMatMul},     {"aten::baddbmm", Kind::AddMatMul},
  };
  auto it = kinds.find(name);
  return it == kinds.end() ? Kind::None : it->second;
}

struct State {
  MacCount count;
  int depth = 0;  // counted ops currently open on this thread
};
thread_local State* t_state = nullptr;

struct Counted : at::ObserverContext {
  Kind kind = Kind::None;
  bool outermost = false;
};

const at::Tensor* tensor_input(const at::RecordFunction& fn, size_t i) {
  const auto inputs = fn.inputs();
  if (i >= inputs.size() || !inputs[i].isTensor()) return nullptr;
  return &inputs[i].toTensor();
}

double macs_of(const at::RecordFunction& fn, Kind kind) {
  const auto& outputs = fn.outputs();
  if (outputs.empty() || !outputs[0].isTensor()) return 0;
  const auto& out = outputs[0].toTensor();
  const double n = static_cast<double>(out.numel());
  switch (kind) {
    case Kind::Conv: {
      // Each output element sums weight.numel() / out_channels = (C_in / groups) * k_h * k_w.
      const at::Tensor* w = tensor_input(fn, 1);
      if (!w || w->dim() < 3 || w->size(0) == 0) return 0;
      return n * static_cast<double>(w->numel() / w->size(0));
    }
    case Kind::Linear: {  // weight (out, in)
      const at::Tensor* w = tensor_input(fn, 1);
      return w && w->dim() == 2 ? n * static_cast<double>(w->size(1)) : 0;
    }
    case Kind::MatMul: {  // a (..., n, k) @ b (..., k, m)
      const at::Tensor* a = tensor_input(fn, 0);
      return a && a->dim() >= 1 ? n * static_cast<double>(a->size(-1)) : 0;
    }
    case Kind::AddMatMul: {  // c + a @ b: a is the second input
      const at::Tensor* a = tensor_input(fn, 1);
      return a && a->dim() >= 1 ? n * static_cast<double>(a->size(-1)) : 0;
    }
    case Kind::None: break;
  }
  return 0;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (!t_state) return nullptr;
  const Kind kind = kind_of(fn.name());
  if (kind == Kind::None) return nullptr;
  auto ctx = std::make_unique<Counted>();
  ctx->kind = kind;
  ctx->outermost = t_state->depth == 0;
  ++t_state->depth;
  return ctx;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx_base) {
  auto* ctx = static_cast<Counted*>(ctx_base);
  if (!t_state || !ctx) return;
  --t_state->depth;
  if (!ctx->outermost) return;
  const double macs = macs_of(fn, ctx->kind);
  t_state->count.total += macs;
  t_state->count.by_op[fn.name()] += macs;
  ++t_state->count.calls;
}

}  // namespace

MacCount count_macs(const std::function<void()>& fn) {
  if (t_state) throw std::logic_error("count_macs cannot be nested");
  State state;
  t_state = &state;
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_start, on_end).needsInputs(true).needsOutputs(true));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    t_state = nullptr;
    throw;
  }
  at::removeCallback(handle);
  t_state = nullptr;
  return state.count;
}

}  // namespace normexp::analysis
