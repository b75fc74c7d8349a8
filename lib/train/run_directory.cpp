#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/version.h"
#include "backend/torch_info.h"

namespace normexp::train {

namespace fs = std::filesystem;

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Completed: return "completed";
    case RunStatus::Diverged: return "diverged";
    case RunStatus::Interrupted: return "interrupted";
  }
  return "?";
}

fs::path RunDirectory::path_for(const config::Experiment& exp) {
  return fs::path(exp.section("output").get_string("root")) / exp.name / exp.hash() /
         ("seed" + std::to_string(exp.seed));
}

namespace {
std::string status_of(const fs::path& dir) {
  try {
    return nlohmann::json::parse(read_file(dir / "metrics.json")).value("status", "unknown");
  } catch (const std::exception&) {
    return "unknown";
  }
}

RunExistsError exists_error(const fs::path& dir) {
  return RunExistsError("results directory " + dir.string() + " already holds a run (status: " +
                        status_of(dir) +
                        "); runs are never overwritten: use another --seed or output.root, or "
                        "delete the directory");
}
}  // namespace

RunDirectory::RunDirectory(const config::Experiment& exp, bool resume)
    : exp_(exp), path_(path_for(exp)), started_at_(iso_time_now()),
      started_(std::chrono::steady_clock::now()) {
  if (!fs::exists(path_)) return;
  if (!resume) throw exists_error(path_);
  reopened_ = true;
  lock();  // before reading: what a live writer is rewriting is not ours to judge
  remove_stale_temporaries();
  const auto metrics = path_ / "metrics.json";
  if (!fs::exists(metrics)) return;
  try {
    previous_ = nlohmann::json::parse(read_file(metrics));
  } catch (const nlohmann::json::exception& e) {
    throw RunError("cannot resume " + path_.string() + ": " + metrics.string() +
                   " is not valid JSON (" + e.what() + ")");
  }
  if (!previous_.is_object())
    throw RunError("cannot resume " + path_.string() + ": " + metrics.string() +
                   " is not a JSON object");
}

RunDirectory::RunDirectory(const config::Experiment& exp, bool resume, Follower)
    : exp_(exp), path_(path_for(exp)), follower_(true), started_at_(iso_time_now()),
      started_(std::chrono::steady_clock::now()) {
  if (!resume || !fs::exists(path_)) return;
  reopened_ = true;
  try {
    previous_ = nlohmann::json::parse(read_file(path_ / "metrics.json"));
  } catch (const std::exception&) {
    previous_ = nullptr;  // rank 0 judges the directory; a follower only borrows its history
  }
}

std::optional<RunStatus> RunDirectory::finished() const {
  if (!previous_.is_object()) return std::nullopt;
  const std::string status = previous_.value("status", "unknown");
  if (status == "completed") return RunStatus::Completed;
  if (status == "diverged") return RunStatus::Diverged;
  return std::nullopt;
}

// Files of a writer killed in the middle of write_file_atomic (name.tmp.<pid>): with the lock
// held, no live writer owns them.
void RunDirectory::remove_stale_temporaries() const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".tmp.") == std::string::npos) continue;
    fs::remove(entry.path(), ec);
    if (!ec) spdlog::info("removed {}, left by a writer that was killed", entry.path().string());
  }
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void RunDirectory::lock() {
  const fs::path file = path_.parent_path() / ("." + path_.filename().string() + ".lock");
  lock_fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw RunError("cannot open the lock file " + file.string() + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      std::string holder;
      try {
        holder = read_file(file);
      } catch (const std::exception&) {
      }
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      ::close(lock_fd_);
      lock_fd_ = -1;
      throw RunExistsError("results directory " + path_.string() +
                           " is being written by another normexp (" +
                           (holder.empty() ? std::string("holder unknown") : holder) +
                           "); two writers would mix their files: wait for it to end, or stop "
                           "it, then --resume");
    }
    // No locks on this file system (e.g. NFS without lockd, Lustre without -o flock).
    spdlog::warn("cannot lock {} ({}): make sure that only one normexp writes this run",
                 file.string(), std::strerror(err));
    ::close(lock_fd_);
    lock_fd_ = -1;
    return;
  }
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  const std::string who = "pid " + std::to_string(::getpid()) + " on host " + host +
                          " since " + iso_time_now() + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) {
    ssize_t written = ::pwrite(lock_fd_, who.data(), who.size(), 0);
    (void)written;  // the holder's note is a courtesy; the lock is what counts
  }
}

void RunDirectory::claim() {
  if (follower_) {
    started_ = std::chrono::steady_clock::now();
    return;
  }
  if (!reopened_) {
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    if (ec) throw RunError("cannot create " + path_.parent_path().string() + ": " + ec.message());
    lock();  // before creating: a --resume that finds the new directory then waits on us
    if (!fs::create_directory(path_, ec)) {
      if (ec) throw RunError("cannot create " + path_.string() + ": " + ec.message());
      throw exists_error(path_);
    }
  }
  started_ = std::chrono::steady_clock::now();
  write_file("config.yaml", exp_.resolved_yaml());
}

nlohmann::json RunDirectory::metrics(const std::string& status, const nlohmann::json& fields,
                                     double prior_wall_s) const {
  nlohmann::json m = fields.is_object() ? fields : nlohmann::json::object();
  m["name"] = exp_.name;
  m["hash"] = exp_.hash();
  m["seed"] = exp_.seed;
  m["status"] = status;
  m["config"] = exp_.resolved();
  m["config_file"] = exp_.source;
  m["versions"] = {{"normexp", normexp_version()},
                   {"git_commit", git_commit()},
                   {"libtorch", torch_version()}};
  m["device"] = device_;
  m["started_at"] = started_at_;
  m["updated_at"] = iso_time_now();
  m["wall_time_s"] = prior_wall_s + seconds_running();
  return m;
}

void RunDirectory::write_metrics(const nlohmann::json& metrics) const {
  write_file("metrics.json", metrics.dump(2) + "\n");
}

void RunDirectory::write_file(const std::string& name, const std::string& text) const {
  if (follower_) return;
  write_file_atomic(path_ / name, text);
}

void RunDirectory::append_file(const std::string& name, const std::string& text) const {
  if (follower_) return;
  normexp::append_file(path_ / name, text);
}

}  // namespace normexp::train
