#pragma once
// Who this process is in a data-parallel run, read from the launcher's environment the way
// PyTorch's env:// initialisation reads it:
//   torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   srun:     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE, and the
//             first host of SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST) as the master
// torchrun's variables win when both are present (torchrun inside an allocation). Without
// either, or with a world of one, the run is the plain single-process run.

#include <functional>
#include <string>

namespace normexp::backend {

struct Launch {
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;  // processes on this node (GPU index, CPU share)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // "torchrun", "slurm" or "none"
  // torchrun >= 2.x serves the rendezvous store itself (TORCHELASTIC_USE_AGENT_STORE): every
  // rank connects to it as a client, under a prefix per restart.
  bool agent_store = false;
  std::string store_prefix;
  bool distributed() const { return world_size > 1; }
};

using Getenv = std::function<const char*(const char*)>;

// The launch this process was started by. RunError naming the variable when one is malformed
// (not a number, a rank outside the world, a port outside 1..65535).
Launch detect_launch(const Getenv& getenv);
Launch detect_launch();  // from the process environment

// The first host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03", "a,b" -> "a".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace normexp::backend
