#pragma once
// Error types shared by every layer. The app maps them to exit codes (see apps/normexp).

#include <stdexcept>
#include <string>
#include <vector>

namespace normexp {

// One problem in a configuration: where it was written, which key, what is wrong.
struct ConfigIssue {
  std::string where;    // "configs/a.yaml:12", "--set optim.lr=x", or "default"
  std::string path;     // full key path, e.g. "optim.lr"
  std::string message;  // e.g. "expected a float > 0, got 'abc'"
  std::string str() const;  // "where: path: message" (parts that are empty are left out)
};

// A bad configuration (unknown key, wrong type, out of range, unknown component).
// Carries every issue found, so a user fixes them all in one go. Exit code 2.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigIssue> issues);
  ConfigError(std::string where, std::string path, std::string message);
  const std::vector<ConfigIssue>& issues() const { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

// Collects the issues of every ConfigError thrown by the functions it runs, so that a builder
// reports all problems of a config at once: `IssueCollector c; c([&]{...}); c.throw_if_any();`.
class IssueCollector {
 public:
  template <class F>
  void operator()(F&& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      issues.insert(issues.end(), e.issues().begin(), e.issues().end());
    }
  }
  void add(ConfigIssue issue) { issues.push_back(std::move(issue)); }
  bool empty() const { return issues.empty(); }
  void throw_if_any() {
    if (!issues.empty()) throw ConfigError(std::move(issues));
  }
  std::vector<ConfigIssue> issues;
};

// A run that cannot proceed for a reason outside the config (missing data, I/O failure,
// an existing results directory). Exit code 1 unless the app says otherwise.
class RunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The run's results directory already holds a run (never overwritten). Exit code 3.
class RunExistsError : public RunError {
 public:
  using RunError::RunError;
};

}  // namespace normexp
