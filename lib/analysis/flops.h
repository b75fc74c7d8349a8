#pragma once
// Multiply-accumulate counts of a forward pass, read off the matrix ops LibTorch dispatches
// (through its RecordFunction observers), so any model is counted without per-layer code.
// Counted: convolutions (any of LibTorch's conv entry points), linear, matmul, mm, bmm,
// addmm, baddbmm; only the outermost of nested calls (conv2d -> convolution -> cudnn_...)
// counts. Elementwise work (norms, activations, pooling, additions) is not counted: for the
// papers' CNNs it is well under 1% of the MACs, and it is memory-bound anyway.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace normexp::analysis {

struct MacCount {
  double total = 0;                      // multiply-accumulates
  std::map<std::string, double> by_op;   // e.g. "aten::conv2d" -> MACs
  int64_t calls = 0;                     // counted op calls
};

// Runs `fn` on this thread with the observer installed and returns what it dispatched.
// Nested use is not supported (std::logic_error).
MacCount count_macs(const std::function<void()>& fn);

}  // namespace normexp::analysis
