#include "backend/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/c10d_factories.h"

namespace normexp::backend {

std::vector<std::string> distributed_backends() {
  std::vector<std::string> out;
#ifdef NORMEXP_WITH_GLOO
  out.push_back("gloo");
#endif
#ifdef NORMEXP_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

namespace {

// Rank 0 serves the store (unless torchrun's agent already does) and waits for every rank.
c10::intrusive_ptr<c10d::Store> rendezvous(const Launch& launch, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(launch.master_port);
  o.isServer = launch.rank == 0 && !launch.agent_store;
  o.numWorkers = launch.agent_store ? c10::nullopt : c10::optional<std::size_t>(launch.world_size);
  o.waitWorkers = !launch.agent_store;
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, o);
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format(
        "rank {} of {} could not meet the others at {}:{} ({} launch) within {} s: {}",
        launch.rank, launch.world_size, launch.master_addr, launch.master_port, launch.launcher,
        timeout.count() / 1000, std::string(e.what()).substr(0, 300)));
  }
  return c10::make_intrusive<c10d::PrefixStore>(launch.store_prefix, store);
}

}  // namespace

std::unique_ptr<ProcessGroup> connect(const Launch& launch, const c10::Device& device,
                                      std::chrono::seconds timeout) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  const auto none = [&] {
    return DistributedError(fmt::format(
        "this normexp was built without a c10d backend for {} (it has: {}); a run of world "
        "size {} cannot start",
        device.str(), distributed_backends().empty() ? "none" : fmt::format("{}", fmt::join(distributed_backends(), ", ")),
        launch.world_size));
  };
#ifdef NORMEXP_WITH_NCCL
  if (device.is_cuda()) return detail::make_nccl(rendezvous(launch, ms), launch, ms);
#endif
#ifdef NORMEXP_WITH_GLOO
  if (device.is_cuda())
    spdlog::warn("no NCCL in this build: CUDA tensors are reduced through Gloo (slower)");
  return detail::make_gloo(rendezvous(launch, ms), launch, ms);
#endif
  (void)ms;
  throw none();
}

}  // namespace normexp::backend
