#include "core/error.h"

#include <utility>

namespace normexp {

std::string ConfigIssue::str() const {
  std::string out;
  for (const std::string* part : {&where, &path, &message}) {
    if (part->empty()) continue;
    if (!out.empty()) out += ": ";
    out += *part;
  }
  return out;
}

namespace {

std::string join_issues(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& issue : issues) {
    if (!out.empty()) out += '\n';
    out += issue.str();
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

ConfigError::ConfigError(std::string where, std::string path, std::string message)
    : ConfigError(std::vector<ConfigIssue>{
          ConfigIssue{std::move(where), std::move(path), std::move(message)}}) {}

}  // namespace normexp
