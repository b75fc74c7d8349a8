// The data-parallel pieces against references computed another way: the launch environment,
// the collectives, gradient summation and synchronized BatchNorm (each rank's part of a batch
// must give exactly what one process computes on the whole batch).
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>

#include "backend/launch.h"
#include "data/augment.h"
#include "distributed/ranks.h"
#include "nn/sync_batch_norm.h"
#include "train/data_parallel.h"

namespace normexp {
namespace {

backend::Launch launch_from(std::map<std::string, std::string> env) {
  return backend::detect_launch([env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Launch, TorchrunSlurmAndNone) {
  const auto none = launch_from({});
  EXPECT_FALSE(none.distributed());
  EXPECT_EQ(none.launcher, "none");

  const auto t = launch_from({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                              {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"},
                              {"MASTER_PORT", "1234"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                              {"TORCHELASTIC_RESTART_COUNT", "2"},
                              // torchrun inside a Slurm allocation: torchrun's variables win
                              {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.local_world_size, 2);
  EXPECT_EQ(t.master_addr, "node7");
  EXPECT_EQ(t.master_port, 1234);
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.store_prefix, "normexp/2");

  const auto s = launch_from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"},
                              {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                              {"SLURM_JOB_NODELIST", "gpu[07-08]"}, {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 8);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.local_world_size, 4);
  EXPECT_EQ(s.master_addr, "gpu07");
  EXPECT_EQ(s.master_port, 20000 + 123456 % 20000);
  EXPECT_FALSE(s.agent_store);
}

TEST(Launch, SlurmNodeLists) {
  EXPECT_EQ(backend::first_slurm_host("gpu[03-05,07],cpu1"), "gpu03");
  EXPECT_EQ(backend::first_slurm_host("a,b"), "a");
  EXPECT_EQ(backend::first_slurm_host("node1"), "node1");
  EXPECT_EQ(backend::first_slurm_host("rack[2]-n[010-012]"), "rack2");  // first bracket decides
  EXPECT_EQ(backend::first_slurm_host("x[9,1-3]"), "x9");
}

// What the first test leaves out: under Slurm the job step's node list (an srun inside a
// bigger allocation) and an explicit MASTER_ADDR win over the job's list, a requeued job
// meets under fresh store keys, and without a per-node count every task is on one node (also
// for torchrun without LOCAL_WORLD_SIZE).
TEST(Launch, SlurmStepNodesExplicitMasterRequeuesAndOneNodeDefaults) {
  const std::map<std::string, std::string> slurm{{"SLURM_PROCID", "1"},
                                                  {"SLURM_NTASKS", "3"},
                                                  {"SLURM_JOB_NODELIST", "gpu[01-04]"},
                                                  {"SLURM_STEP_NODELIST", "gpu[03-04]"},
                                                  {"SLURM_RESTART_COUNT", "2"}};
  const auto s = launch_from(slurm);
  EXPECT_EQ(s.master_addr, "gpu03");
  EXPECT_EQ(s.store_prefix, "normexp/2");
  EXPECT_EQ(s.local_world_size, 3);
  auto with_master = slurm;
  with_master["MASTER_ADDR"] = "head7";
  EXPECT_EQ(launch_from(with_master).master_addr, "head7");
  auto job_only = slurm;
  job_only.erase("SLURM_STEP_NODELIST");
  EXPECT_EQ(launch_from(job_only).master_addr, "gpu01");

  const auto t = launch_from({{"RANK", "2"}, {"WORLD_SIZE", "3"}});
  EXPECT_EQ(t.local_world_size, 3);
  EXPECT_EQ(t.store_prefix, "normexp/0");
  EXPECT_FALSE(t.agent_store);
}

TEST(Launch, MalformedVariablesAreNamed) {
  auto message = [](std::map<std::string, std::string> env) {
    try {
      launch_from(std::move(env));
    } catch (const RunError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"RANK", "one"}, {"WORLD_SIZE", "2"}}).find("RANK='one'"), std::string::npos);
  EXPECT_NE(message({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}).find("RANK='-1' is not a non-negative"),
            std::string::npos);
  EXPECT_NE(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("rank 2 is outside a world of 2"),
            std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}})
                .find("outside 1..65535"),
            std::string::npos);
}

TEST(ProcessGroup, CollectivesOverGloo) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  testing::run_ranks(3, [](std::shared_ptr<backend::ProcessGroup> g) {
    const int r = g->rank();
    // Several tensors of different dtypes in one call.
    std::vector<at::Tensor> t{torch::full({4}, r + 1.0), torch::full({2}, int64_t{r})};
    g->allreduce_sum(t);
    EXPECT_TRUE(t[0].equal(torch::full({4}, 6.0)));
    EXPECT_TRUE(t[1].equal(torch::full({2}, int64_t{3})));
    std::vector<at::Tensor> b{torch::full({3}, double(r * 10 + 7))};
    g->broadcast(b, 1);
    EXPECT_TRUE(b[0].equal(torch::full({3}, 17.0)));
    const auto all = g->allgather(torch::full({2}, float(r)));
    ASSERT_EQ(all.size(), 3u);
    for (int q = 0; q < 3; ++q) EXPECT_TRUE(all[q].equal(torch::full({2}, float(q))));
    g->barrier();
  });
}

// A rank whose peers never come gives up after the timeout, saying where it waited, for how
// long and under which launcher, instead of hanging.
TEST(ProcessGroup, ARankLeftAloneGivesUpNamingWhereAndHowLongItWaited) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  backend::Launch l;
  l.rank = 1;
  l.world_size = 2;
  l.master_port = testing::free_port();
  l.launcher = "torchrun";
  l.store_prefix = "alone";
  const auto start = std::chrono::steady_clock::now();
  try {
    backend::connect(l, c10::Device(c10::kCPU), std::chrono::seconds(2));
    ADD_FAILURE() << "connected to nobody";
  } catch (const backend::DistributedError& e) {
    const std::string expected = "rank 1 of 2 could not meet the others at 127.0.0.1:" +
                                 std::to_string(l.master_port) + " (torchrun launch) within 2 s";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

// torchrun >= 2.x serves the store from its agent (TORCHELASTIC_USE_AGENT_STORE): every rank,
// rank 0 too, is a client, and each restart of the group works under its own prefix of the
// one store, so the second group never reads the first one's rendezvous keys. In the restart
// rank 1 comes late: rank 0 must wait for its new address, not take the dead one it left in
// the store the first time.
TEST(ProcessGroup, UnderTorchrunsAgentStoreEveryRankIsAClientAndEachRestartItsOwnPrefix) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  const int port = testing::free_port();
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = true;
  o.waitWorkers = false;
  o.timeout = std::chrono::seconds(30);
  const auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", o);
  for (const std::string prefix : {"restart0", "restart1"}) {
    SCOPED_TRACE(prefix);
    testing::run_ranks(
        2,
        [](std::shared_ptr<backend::ProcessGroup> g) {
          std::vector<at::Tensor> t{torch::full({3}, g->rank() + 1.0)};
          g->allreduce_sum(t);
          EXPECT_TRUE(t[0].equal(torch::full({3}, 3.0)));
        },
        [&](backend::Launch& l) {
          l.master_port = port;
          l.agent_store = true;
          l.store_prefix = prefix;
          if (prefix == "restart1" && l.rank == 1)
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        });
  }
}

// PyTorch's GLOO_SOCKET_IFNAME picks the interface Gloo talks over: honoured, and a name this
// host lacks is an error that names it (not a hang, not another interface used silently).
TEST(ProcessGroup, GlooTalksOverTheInterfaceGlooSocketIfnameNames) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  const auto sum_over = [](const char* ifname) {
    ::setenv("GLOO_SOCKET_IFNAME", ifname, 1);
    try {
      testing::run_ranks(2, [](std::shared_ptr<backend::ProcessGroup> g) {
        std::vector<at::Tensor> t{torch::ones({2})};
        g->allreduce_sum(t);
        EXPECT_TRUE(t[0].equal(torch::full({2}, 2.0)));
      });
    } catch (...) {
      ::unsetenv("GLOO_SOCKET_IFNAME");
      throw;
    }
    ::unsetenv("GLOO_SOCKET_IFNAME");
  };
  EXPECT_NO_THROW(sum_over("lo"));
  try {
    sum_over("normexp_nosuch0");
    ADD_FAILURE() << "a missing interface was ignored";
  } catch (const backend::DistributedError& e) {
    EXPECT_NE(std::string(e.what()).find("GLOO_SOCKET_IFNAME=normexp_nosuch0"), std::string::npos)
        << e.what();
  }
}

TEST(DataParallel, SumGradientsMatchesTheSumAcrossBucketBoundaries) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  testing::run_ranks(2, [](std::shared_ptr<backend::ProcessGroup> g) {
    // A bucket of 64 bytes: the 6 tensors (float and double) span several buckets.
    train::DataParallel dp(g, c10::Device(c10::kCPU), /*bucket_bytes=*/64);
    std::vector<at::Tensor> params, expected;
    for (int i = 0; i < 6; ++i) {
      auto dtype = i % 2 ? torch::kDouble : torch::kFloat;
      auto p = torch::zeros({i + 2, 3}, dtype).requires_grad_(true);
      auto grad_of = [&](int rank) {
        return torch::arange((i + 2) * 3, dtype).view({i + 2, 3}) * (rank + 1) + i;
      };
      p.mutable_grad() = grad_of(g->rank());
      params.push_back(p);
      expected.push_back(grad_of(0) + grad_of(1));
    }
    params.push_back(torch::zeros({2}).requires_grad_(true));  // no gradient: left alone
    dp.sum_gradients(params);
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_TRUE(params[i].grad().equal(expected[i])) << "tensor " << i;
    EXPECT_FALSE(params.back().grad().defined());
  });
}

// One process's BatchNorm on the whole batch: the reference for the synchronized layer.
struct BnReference {
  at::Tensor y, dx, dweight, dbias, running_mean, running_var;
};
BnReference reference_bn(const at::Tensor& x, const at::Tensor& dy) {
  torch::nn::BatchNorm2d bn(torch::nn::BatchNorm2dOptions(x.size(1)).momentum(0.1));
  torch::NoGradGuard no;
  bn->weight.copy_(torch::linspace(0.5, 1.5, x.size(1)));
  bn->bias.copy_(torch::linspace(-0.2, 0.2, x.size(1)));
  torch::AutoGradMode on(true);
  auto xx = x.clone().requires_grad_(true);
  auto y = bn->forward(xx);
  y.backward(dy);
  return {y.detach(), xx.grad(), bn->weight.grad(), bn->bias.grad(), bn->running_mean.clone(),
          bn->running_var.clone()};
}

TEST(SyncBatchNorm, EachRanksPartEqualsOneProcessOnTheWholeBatch) {
  if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  torch::manual_seed(3);
  // Uneven parts (5 and 3 images) and a mean far from 0 (the two-pass variance's case).
  const auto x = torch::randn({8, 4, 3, 3}, torch::kDouble) * 2 + 5;
  const auto dy = torch::randn({8, 4, 3, 3}, torch::kDouble);
  const auto ref = reference_bn(x.to(torch::kFloat), dy.to(torch::kFloat));
  const int64_t cut = 5;
  std::vector<at::Tensor> dweights(2), dbiases(2);
  testing::run_ranks(2, [&](std::shared_ptr<backend::ProcessGroup> g) {
    const int r = g->rank();
    nn::SyncBatchNorm2d bn(torch::nn::BatchNormOptions(4).momentum(0.1), g);
    {
      torch::NoGradGuard no;
      bn->weight.copy_(torch::linspace(0.5, 1.5, 4));
      bn->bias.copy_(torch::linspace(-0.2, 0.2, 4));
    }
    const auto part = r == 0 ? torch::indexing::Slice(0, cut) : torch::indexing::Slice(cut, 8);
    auto xx = x.index({part}).to(torch::kFloat).clone().requires_grad_(true);
    auto y = bn->forward(xx);
    y.backward(dy.index({part}).to(torch::kFloat));
    EXPECT_TRUE(torch::allclose(y.detach(), ref.y.index({part}), 1e-4, 1e-5)) << "rank " << r;
    // The input gradient: the global loss's, through the global statistics.
    EXPECT_TRUE(torch::allclose(xx.grad(), ref.dx.index({part}), 1e-4, 1e-5)) << "rank " << r;
    EXPECT_TRUE(torch::allclose(bn->running_mean, ref.running_mean, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(bn->running_var, ref.running_var, 1e-5, 1e-6));
    dweights[r] = bn->weight.grad().clone();
    dbiases[r] = bn->bias.grad().clone();
    // Evaluation uses the running statistics, like BatchNorm.
    bn->eval();
    torch::nn::BatchNorm2d plain(torch::nn::BatchNorm2dOptions(4));
    plain->eval();
    {
      torch::NoGradGuard no;
      plain->weight.copy_(bn->weight);
      plain->bias.copy_(bn->bias);
      plain->running_mean.copy_(bn->running_mean);
      plain->running_var.copy_(bn->running_var);
    }
    const auto xe = x.to(torch::kFloat);
    EXPECT_TRUE(torch::allclose(bn->forward(xe), plain->forward(xe), 1e-5, 1e-6));
  });
  // γ and β gradients are per-rank sums that add up to one process's (the trainer sums them).
  EXPECT_TRUE(torch::allclose(dweights[0] + dweights[1], ref.dweight, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(dbiases[0] + dbiases[1], ref.dbias, 1e-4, 1e-5));
  // Not a tautology: each rank's own statistics differ from the global ones.
  EXPECT_FALSE(torch::allclose(dweights[0], ref.dweight, 1e-2, 1e-3));
}

TEST(SyncBatchNorm, SameParameterAndBufferNamesAsBatchNorm) {
  nn::SyncBatchNorm2d sync(torch::nn::BatchNormOptions(3), nullptr);
  torch::nn::BatchNorm2d plain(torch::nn::BatchNorm2dOptions(3));
  std::vector<std::string> a, b;
  for (const auto& p : sync->named_parameters()) a.push_back(p.key());
  for (const auto& p : sync->named_buffers()) a.push_back(p.key());
  for (const auto& p : plain->named_parameters()) b.push_back(p.key());
  for (const auto& p : plain->named_buffers()) b.push_back(p.key());
  EXPECT_EQ(a, b);
  // Without a group (or with one rank) it is BatchNorm, running statistics included.
  torch::manual_seed(1);
  auto x = torch::randn({6, 3, 2, 2});
  EXPECT_TRUE(torch::allclose(sync->forward(x), plain->forward(x), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(sync->running_var, plain->running_var, 1e-6, 1e-6));
  EXPECT_EQ(sync->num_batches_tracked.item<int64_t>(), 1);
}

TEST(DeviceLoaderShard, RanksTogetherSeeTheGlobalBatches) {
  const auto x = torch::arange(11, torch::kLong).to(torch::kUInt8).view({11, 1, 1, 1});
  const auto y = torch::arange(11, torch::kLong);
  data::DeviceLoader one(x, y, 4, /*shuffle=*/false, /*drop_last=*/false);
  std::vector<data::DeviceLoader> parts;
  for (int r = 0; r < 3; ++r) {
    parts.emplace_back(x, y, 4, false, false);
    parts.back().shard(r, 3, /*keep_small_last=*/true);
  }
  ASSERT_EQ(one.num_batches(), 3);
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<at::Tensor> labels;
    for (auto& p : parts) {
      ASSERT_EQ(p.num_batches(), 3);
      labels.push_back(p.batch(i).second);
    }
    EXPECT_TRUE(torch::cat(labels).equal(one.batch(i).second)) << "batch " << i;
    EXPECT_EQ(parts[0].global_batch_size(i), one.batch(i).second.size(0));
  }
  // Training leaves out a last batch smaller than the world (3 images, 4 ranks).
  data::DeviceLoader train(x, y, 4, false, false);
  train.shard(1, 4, /*keep_small_last=*/false);
  EXPECT_EQ(train.num_batches(), 2);
}

}  // namespace
}  // namespace normexp
