#pragma once
// Test support for data-parallel code: W ranks as W threads of this process, each with its
// own Gloo group over 127.0.0.1 (the real c10d path, without launching processes), and a
// free TCP port for rendezvous.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "backend/process_group.h"

namespace normexp::testing {

// A port nobody listens on right now (the kernel's choice for port 0).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool have_gloo() {
  for (const auto& b : backend::distributed_backends())
    if (b == "gloo") return true;
  return false;
}

// Runs fn(group) on `world` threads, one rank each; rethrows the first failure. `adjust`
// changes each rank's launch (a torchrun agent's store, a prefix, a port) before it connects.
inline void run_ranks(int world,
                      const std::function<void(std::shared_ptr<backend::ProcessGroup>)>& fn,
                      const std::function<void(backend::Launch&)>& adjust = {}) {
  const int port = free_port();
  std::vector<std::thread> threads;
  std::exception_ptr failure;
  std::mutex mu;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        backend::Launch l;
        l.rank = r;
        l.world_size = world;
        l.local_rank = r;
        l.local_world_size = world;
        l.master_port = port;
        l.store_prefix = "test";
        if (adjust) adjust(l);
        std::shared_ptr<backend::ProcessGroup> g =
            backend::connect(l, c10::Device(c10::kCPU), std::chrono::seconds(30));
        fn(g);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace normexp::testing
