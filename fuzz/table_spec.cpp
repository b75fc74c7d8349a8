// The table-spec reader on hostile YAML.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "fuzz_target.h"
#include "report/spec.h"

using namespace normexp;
namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path dir =
      fs::temp_directory_path() / ("normexp_fuzz_spec_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_file_atomic(dir / "spec.yaml", fuzz::as_text(data, size));
  try {
    const auto spec = report::load_spec(dir / "spec.yaml");
    for (const auto& cell : spec.cells) (void)spec.metric_of(cell);
  } catch (const ConfigError&) {
  }
  return 0;
}
