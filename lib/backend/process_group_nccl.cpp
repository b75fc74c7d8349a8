// NCCL: CUDA collectives (built only with a CUDA LibTorch whose NCCL headers were found).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "backend/c10d_factories.h"
#include "backend/c10d_group.h"

namespace normexp::backend::detail {

std::unique_ptr<ProcessGroup> make_nccl(const c10::intrusive_ptr<c10d::Store>& store,
                                        const Launch& launch, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  try {
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, launch.rank,
                                                             launch.world_size, options);
    return std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>(group, launch.rank,
                                                               launch.world_size, "nccl");
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {} of {}: NCCL could not start: {}", launch.rank,
                                       launch.world_size, std::string(e.what()).substr(0, 300)));
  }
}

}  // namespace normexp::backend::detail
