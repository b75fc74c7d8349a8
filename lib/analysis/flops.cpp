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
  bool outermost = false;
  double per_output = 0;  // MACs per output element
};

const at::Tensor* tensor_input(const at::RecordFunction& fn, size_t i) {
  const auto inputs = fn.inputs();
  if (i >= inputs.size() || !inputs[i].isTensor()) return nullptr;
  return &inputs[i].toTensor();
}

// The length of the sum behind each output element, read from the inputs. Only in the start
// callback: LibTorch >= 2 keeps the inputs as a view of the dispatcher's stack, gone by the
// end callback (1.13 copied them).
double macs_per_output(const at::RecordFunction& fn, Kind kind) {
  switch (kind) {
    case Kind::Conv: {
      // (C_in / groups) * k_h * k_w = weight.numel() / out_channels.
      const at::Tensor* w = tensor_input(fn, 1);
      if (!w || w->dim() < 3 || w->size(0) == 0) return 0;
      return static_cast<double>(w->numel() / w->size(0));
    }
    case Kind::Linear: {  // weight (out, in)
      const at::Tensor* w = tensor_input(fn, 1);
      return w && w->dim() == 2 ? static_cast<double>(w->size(1)) : 0;
    }
    case Kind::MatMul: {  // a (..., n, k) @ b (..., k, m)
      const at::Tensor* a = tensor_input(fn, 0);
      return a && a->dim() >= 1 ? static_cast<double>(a->size(-1)) : 0;
    }
    case Kind::AddMatMul: {  // c + a @ b: a is the second input
      const at::Tensor* a = tensor_input(fn, 1);
      return a && a->dim() >= 1 ? static_cast<double>(a->size(-1)) : 0;
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
  ctx->outermost = t_state->depth == 0;
  if (ctx->outermost) ctx->per_output = macs_per_output(fn, kind);
  ++t_state->depth;
  return ctx;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx_base) {
  auto* ctx = static_cast<Counted*>(ctx_base);
  if (!t_state || !ctx) return;
  --t_state->depth;
  if (!ctx->outermost) return;
  const auto& outputs = fn.outputs();  // owned by the RecordFunction: valid here
  if (outputs.empty() || !outputs[0].isTensor()) return;
  const double macs = ctx->per_output * static_cast<double>(outputs[0].toTensor().numel());
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
