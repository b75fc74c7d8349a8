#include "core/version.h"

#include "gitinfo.h"

namespace normexp {

std::string normexp_version() {
  return NORMEXP_VERSION;
}

std::string git_commit() {
  return NORMEXP_GIT_COMMIT;
}

}  // namespace normexp
