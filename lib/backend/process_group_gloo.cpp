// Gloo: CPU collectives over TCP (and CUDA tensors through host staging when no NCCL).
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>

#include "backend/c10d_factories.h"
#include "backend/c10d_group.h"

namespace normexp::backend::detail {

std::unique_ptr<ProcessGroup> make_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                        const Launch& launch, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->timeout = timeout;
  // The interface the ranks talk over: GLOO_SOCKET_IFNAME as in PyTorch; on one machine the
  // loopback; otherwise the interface this host's name resolves to.
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && *ifname != '\0') {
    try {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } catch (const std::exception& e) {
      throw DistributedError(fmt::format(
          "rank {} of {}: GLOO_SOCKET_IFNAME={} names no interface Gloo can use on this host "
          "(unset it, or name one that `ip addr` lists): {}",
          launch.rank, launch.world_size, ifname, std::string(e.what()).substr(0, 300)));
    }
  } else if (launch.master_addr == "127.0.0.1" || launch.master_addr == "localhost") {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  try {
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, launch.rank,
                                                             launch.world_size, options);
    return std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>(group, launch.rank,
                                                               launch.world_size, "gloo");
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {} of {}: Gloo could not connect the ranks: {}",
                                       launch.rank, launch.world_size,
                                       std::string(e.what()).substr(0, 300)));
  }
}

}  // namespace normexp::backend::detail
