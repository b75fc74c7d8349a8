// The config loader on hostile text: a YAML document, then `--set` overrides, one per line
// after a line "---set---", resolved against a schema of every option type.
#include <filesystem>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "config/node.h"
#include "config/test_support.h"
#include "core/error.h"
#include "fuzz_target.h"

using namespace normexp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const config::Schema schema = testing::test_schema();
  const std::string_view text = fuzz::as_text(data, size);
  const std::string marker = "\n---set---\n";
  const auto split = text.find(marker);
  const std::string_view yaml = text.substr(0, split);
  std::vector<std::string> sets;
  if (split != std::string_view::npos) {
    std::string_view rest = text.substr(split + marker.size());
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      sets.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }
  try {
    config::Node root = config::parse_yaml(yaml, "fuzz.yaml");
    for (const auto& s : sets) config::apply_override(root, s);
    const auto exp = config::resolve_experiment(root, schema, "fuzz");
    (void)exp.hash();
    (void)exp.resolved_yaml();
  } catch (const ConfigError&) {
  }
  return 0;
}
