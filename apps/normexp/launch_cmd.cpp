#include "launch_cmd.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fs.h"
#include "guarded.h"
#include "train/progress.h"

namespace normexp {

namespace {

namespace fs = std::filesystem;

struct LaunchArgs {
  std::string plan, logs = "launch-logs", gpus;
  int jobs = 0;
};

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void launch_stop_handler(int sig) { g_stop_signal = sig; }

// The plan's commands: every line that is not empty or a comment.
std::vector<std::string> read_plan(const std::string& path) {
  const std::string text = path == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {})
                                       : read_file(path);
  if (text.find("#SBATCH") != std::string::npos)
    throw RunError(path + " is an sbatch script (normexp plan --slurm): submit it with sbatch, "
                          "or write the plan without --slurm for normexp launch");
  std::vector<std::string> commands;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    commands.push_back(line.substr(start));
  }
  return commands;
}

std::vector<std::string> parse_gpus(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string g;
  while (std::getline(ss, g, ','))
    if (!g.empty()) out.push_back(g);
  return out;
}

struct Job {
  size_t index;
  std::string gpu;
  fs::path log;
  std::chrono::steady_clock::time_point started;
};

// /bin/sh -c command, output to `log`, CUDA_VISIBLE_DEVICES=gpu when one is given.
pid_t start(const std::string& command, const std::string& gpu, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid < 0) throw RunError(std::string("fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  if (!gpu.empty()) ::setenv("CUDA_VISIBLE_DEVICES", gpu.c_str(), 1);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
  ::_exit(127);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int launch(const LaunchArgs& a) {
  const auto commands = read_plan(a.plan);
  std::vector<std::string> gpus = parse_gpus(a.gpus);
  if (a.gpus.empty())
    for (int64_t g = 0; g < static_cast<int64_t>(torch::cuda::device_count()); ++g)
      gpus.push_back(std::to_string(g));
  const size_t slots =
      a.jobs > 0 ? static_cast<size_t>(a.jobs) : std::max<size_t>(1, gpus.size());
  std::error_code ec;
  fs::create_directories(a.logs, ec);
  if (ec) throw RunError("cannot create the log folder " + a.logs + ": " + ec.message());
  std::cout << fmt::format("launch: {} commands, {} at a time{}; logs in {}\n", commands.size(),
                           slots,
                           gpus.empty() ? std::string(" (no GPU: CUDA_VISIBLE_DEVICES untouched)")
                                        : fmt::format(" on GPUs {}", fmt::join(gpus, ",")),
                           a.logs)
            << std::flush;

  struct sigaction sa {};
  sa.sa_handler = launch_stop_handler;  // no SA_RESTART: waitpid returns to forward the signal
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::map<pid_t, Job> running;
  std::vector<bool> slot_busy(slots, false);
  std::map<pid_t, size_t> slot_of;
  std::vector<std::pair<size_t, int>> failed;  // (command index, exit code)
  size_t next = 0, succeeded = 0;
  bool forwarded = false;
  const SteadyTime launched = std::chrono::steady_clock::now();
  while (next < commands.size() || !running.empty()) {
    while (!g_stop_signal && next < commands.size() && running.size() < slots) {
      size_t slot = 0;
      while (slot_busy[slot]) ++slot;
      const std::string gpu = gpus.empty() ? "" : gpus[slot % gpus.size()];
      const fs::path log = fs::path(a.logs) / fmt::format("{:04d}.log", next);
      const pid_t pid = start(commands[next], gpu, log);
      running[pid] = {next, gpu, log, std::chrono::steady_clock::now()};
      slot_busy[slot] = true;
      slot_of[pid] = slot;
      std::cout << fmt::format("[{}/{}] start{}: {}\n", next + 1, commands.size(),
                               gpu.empty() ? "" : " on GPU " + gpu, commands[next])
                << std::flush;
      ++next;
    }
    if (running.empty()) break;
    if (g_stop_signal && !forwarded) {
      // Each run checkpoints and stops with status 'interrupted'; nothing new starts.
      for (const auto& [pid, job] : running) ::kill(pid, g_stop_signal);
      forwarded = true;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw RunError(std::string("waitpid failed: ") + std::strerror(errno));
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const Job job = it->second;
    running.erase(it);
    slot_busy[slot_of[pid]] = false;
    const int code = exit_code_of(status);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - job.started).count();
    if (code == 0)
      ++succeeded;
    else
      failed.emplace_back(job.index, code);
    // The plan's ETA at the rate so far (commands done per second of the whole launch, so
    // --jobs is counted in); runs a --resume finds completed make it optimistic at first.
    const size_t done = succeeded + failed.size();
    std::string left;
    if (!g_stop_signal && done < commands.size()) {
      left = fmt::format("; {}/{} done, about {} left", done, commands.size(),
                         train::format_duration(seconds_since(launched) *
                                                static_cast<double>(commands.size() - done) /
                                                static_cast<double>(done)));
    }
    std::cout << fmt::format("[{}/{}] exit {} after {:.1f} s ({}){}\n", job.index + 1,
                             commands.size(), code, secs, job.log.string(), left)
              << std::flush;
  }
  const size_t not_started = commands.size() - next;
  std::cout << fmt::format("launch: {} of {} succeeded", succeeded, commands.size());
  if (not_started > 0) std::cout << fmt::format(", {} not started (stopped)", not_started);
  std::cout << "\n";
  if (!failed.empty()) {
    std::cout << fmt::format("{} failed (rerun the plan: every command has --resume):\n",
                             failed.size());
    for (const auto& [index, code] : failed)
      std::cout << fmt::format("  exit {}: {}\n    log: {}\n", code, commands[index],
                               (fs::path(a.logs) / fmt::format("{:04d}.log", index)).string());
  }
  if (g_stop_signal) return 130;
  return failed.empty() ? 0 : 1;
}

}  // namespace

void add_launch_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<LaunchArgs>();
  auto* cmd = app.add_subcommand(
      "launch",
      "run a plan's commands (normexp plan TABLE > plan.txt) on this machine, N at a time, one "
      "GPU each; continues past failures and lists them at the end (exit 1 if any failed)");
  cmd->add_option("plan", a->plan, "plan file (one command per line, # comments), - for stdin")
      ->required();
  cmd->add_option("--jobs,-j", a->jobs, "commands at once (default: one per GPU, 1 without GPUs)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--gpus", a->gpus,
                  "GPU ids to hand out, e.g. 0,1,2,3 (default: every visible GPU); slot k runs "
                  "with CUDA_VISIBLE_DEVICES set to the k-th");
  cmd->add_option("--logs", a->logs, "folder for each command's output (NNNN.log)")
      ->capture_default_str();
  cmd->callback([a, &exit_code] {
    int code = 0;
    exit_code = guarded([&] { code = launch(*a); });
    if (exit_code == 0) exit_code = code;
  });
}

}  // namespace normexp
