// The dataset readers on hostile files: CIFAR-10/100 binary batches and Fashion-MNIST IDX
// files, plain and gzip'd. The first input byte picks the reader and the expected count; the
// rest is the file.
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "data/cifar.h"
#include "data/fashion_mnist.h"
#include "fuzz_target.h"

using namespace normexp;
namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const fs::path dir =
      fs::temp_directory_path() / ("normexp_fuzz_data_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::uint8_t pick = data[0];
  const std::string_view file = fuzz::as_text(data + 1, size - 1);
  const int64_t count = 1 + (pick >> 3);  // 1..32
  try {
    switch (pick % 6) {
      case 0:
      case 1: {  // CIFAR: the count the size implies (the label checks run), or another one
        const auto v = pick % 2 == 0 ? data::CifarVariant::Cifar10 : data::CifarVariant::Cifar100;
        const int64_t record = data::cifar_record_bytes(v);
        const int64_t implied = static_cast<int64_t>(file.size()) / record;
        write_file_atomic(dir / "batch.bin", file);
        data::read_cifar_file(dir / "batch.bin", v, pick & 8 ? count : implied);
        break;
      }
      default: {  // IDX images or labels, plain or gzip'd (the reader prefers <name>.gz)
        const bool gz = pick % 6 >= 4;
        const int dims = pick % 2 == 0 ? 3 : 1;
        fs::remove(dir / "idx.gz");
        fs::remove(dir / "idx");
        write_file_atomic(dir / (gz ? "idx.gz" : "idx"), file);
        data::read_idx_file(dir / "idx", dims, count);
        break;
      }
    }
  } catch (const RunError&) {
  }
  return 0;
}
