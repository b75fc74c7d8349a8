// main() for a fuzz target built without libFuzzer: feeds it every file named on the command
// line or found in a named folder, so CI replays the committed corpus with the ordinary
// compiler. Exits 1 naming the input when the target lets an unexpected exception out.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <vector>

#include "core/fs.h"
#include "fuzz_target.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path p = argv[i];
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) inputs.push_back(e.path());
    } else {
      inputs.push_back(p);
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s <corpus dir or files>...: no input found\n", argv[0]);
    return 2;
  }
  for (const auto& p : inputs) {
    const std::string text = normexp::read_file(p);
    try {
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: unexpected exception: %s\n", p.string().c_str(), e.what());
      return 1;
    }
  }
  std::printf("%zu inputs, no crash\n", inputs.size());
  return 0;
}
