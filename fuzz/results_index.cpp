// The results index on a hostile metrics.json: indexing, metric lookup, the unreadable list.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "fuzz_target.h"
#include "report/report.h"

using namespace normexp;
namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path root =
      fs::temp_directory_path() / ("normexp_fuzz_index_" + std::to_string(::getpid()));
  const fs::path run = root / "exp" / "0123456789abcdef" / "seed0";
  fs::create_directories(run);
  write_file_atomic(run / "metrics.json", fuzz::as_text(data, size));
  const auto index = report::index_results(root);
  for (const auto& [hash, runs] : index)
    for (const auto& r : runs)
      for (const char* key : {"final.test_err", "best.epoch", "history", "a..b", ""})
        (void)report::metric_value(r.metrics, key);
  (void)report::unreadable_runs(index);
  return 0;
}
