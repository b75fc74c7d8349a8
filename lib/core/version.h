#pragma once
#include <string>

namespace normexp {

std::string normexp_version();  // project version, e.g. "0.1.0"
std::string git_commit();       // short commit of the source tree at build time, "-dirty" if modified

}  // namespace normexp
