#pragma once
// Private to lib/backend: normexp's ProcessGroup over any c10d group or backend class (the
// 1.13 ProcessGroupGloo/NCCL derive from c10d::ProcessGroup, the 2.x ones from c10d::Backend;
// the collective calls are the same). Included only by the translation units that define one.

#include <torch/csrc/distributed/c10d/Types.hpp>

#include <fmt/format.h>

#include "backend/process_group.h"

namespace normexp::backend::detail {

template <class Group>
class C10dGroup final : public ProcessGroup {
 public:
  C10dGroup(c10::intrusive_ptr<Group> group, int rank, int size, std::string backend)
      : ProcessGroup(rank, size, std::move(backend)), group_(std::move(group)) {}

  // c10d's vector arguments are one tensor per local device, all alike: several tensors of
  // ours are several collectives.
  void allreduce_sum(std::vector<at::Tensor>& tensors) override {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      wait("all-reduce", [&] { return group_->allreduce(one, o); });
    }
  }
  void broadcast(std::vector<at::Tensor>& tensors, int root) override {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      wait("broadcast", [&] { return group_->broadcast(one, o); });
    }
  }
  std::vector<at::Tensor> allgather(const at::Tensor& tensor) override {
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < size(); ++r) out[0].push_back(at::empty_like(tensor));
    std::vector<at::Tensor> in{tensor.contiguous()};
    wait("all-gather", [&] { return group_->allgather(out, in); });
    return out[0];
  }
  void barrier() override {
    wait("barrier", [&] { return group_->barrier(c10d::BarrierOptions()); });
  }

 private:
  template <class Start>
  void wait(const char* op, Start&& start) {
    try {
      start()->wait();
    } catch (const std::exception& e) {
      throw DistributedError(fmt::format(
          "{} failed on rank {} of {} ({}): {}\nAnother rank has probably died or stopped "
          "answering; its own output says why.",
          op, rank(), size(), backend(), first_line(e.what())));
    }
  }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  c10::intrusive_ptr<Group> group_;
};

}  // namespace normexp::backend::detail
