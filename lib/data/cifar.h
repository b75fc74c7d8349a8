#pragma once
// CIFAR-10 and CIFAR-100 from the official binary version (the "*-binary.tar.gz" archives of
// https://www.cs.toronto.edu/~kriz/cifar.html), read with plain binary I/O. A record is the
// label byte(s) followed by 3072 pixel bytes: 1024 red, then 1024 green, then 1024 blue, each
// a row-major 32x32 plane, which is exactly the (3, 32, 32) layout of one image tensor.
//
// `normexp data fetch|prepare` (data/prepare.h) put the files where these datasets look.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "config/schema.h"
#include "data/dataset.h"

namespace normexp::data {

enum class CifarVariant { Cifar10, Cifar100 };
enum class CifarLabel { Fine, Coarse };  // CIFAR-100 only: 100 fine or 20 coarse classes

// "cifar10" / "cifar100", as registered and as the CLI spells them.
std::string cifar_name(CifarVariant v);
// The inverse; throws RunError for anything else.
CifarVariant cifar_variant(const std::string& name);

// Bytes before the pixels of one record (1 for CIFAR-10, coarse + fine for CIFAR-100).
int64_t cifar_label_bytes(CifarVariant v);
int64_t cifar_record_bytes(CifarVariant v);

struct CifarFileSpec {
  std::string name;  // relative to the layout's directory
  int64_t records = 0;
};

// Where a variant's files are (relative to the data root) and how many records each holds.
struct CifarLayout {
  std::string dir;  // "cifar-10-batches-bin" / "cifar-100-binary"
  std::vector<CifarFileSpec> train, test;
  int64_t train_records() const;
  int64_t test_records() const;
};

// The official layout: the registered datasets always use it. Tests build layouts with the
// same file names and tiny record counts, which only the explicit constructors below accept.
CifarLayout official_cifar_layout(CifarVariant v);

// The official archive of a variant (what `normexp data fetch` downloads).
struct CifarArchive {
  std::string file_name;  // "cifar-10-binary.tar.gz"
  std::string url;
  std::string md5;  // lowercase hex, as published on the CIFAR page
};
const CifarArchive& official_cifar_archive(CifarVariant v);
inline constexpr const char* kCifarPage = "https://www.cs.toronto.edu/~kriz/cifar.html";

// One file's records: uint8 images (N, 3, 32, 32) and int64 labels (N). `labels` is the only
// label of CIFAR-10 and the fine label of CIFAR-100; `coarse_labels` is CIFAR-100 only.
struct CifarRecords {
  at::Tensor images, labels, coarse_labels;
};

// Reads and checks one file: it exists, its size is a whole number of records, it holds
// exactly `expected_records`, every label is in range. Each problem is a RunError naming the
// file, what was expected and what was found.
CifarRecords read_cifar_file(const std::filesystem::path& path, CifarVariant v,
                             int64_t expected_records);

// Reads every file of `layout` under `dir` (the layout's directory itself), so a freshly
// extracted copy is known to be complete before it is put in place.
void verify_cifar_files(const std::filesystem::path& dir, CifarVariant v, const CifarLayout& layout);

// The message for a data root without the variant's directory: how to get the data.
std::string cifar_missing_message(CifarVariant v, const std::filesystem::path& root,
                                  const CifarLayout& layout);

class CifarDataset : public Dataset {
 public:
  // From the data section: `root`, and for CIFAR-100 `label`. Official layout.
  CifarDataset(const config::Params& p, CifarVariant v);
  // Any layout (tests: tiny files in the official format).
  CifarDataset(CifarVariant v, std::filesystem::path root, CifarLabel label, CifarLayout layout);

  DataShape shape() const override;
  int64_t train_size() const override { return layout_.train_records(); }
  ImageData load() const override;

  static std::vector<config::OptionSpec> options(CifarVariant v);

 private:
  CifarVariant variant_;
  std::filesystem::path root_;
  CifarLabel label_;
  CifarLayout layout_;
};

}  // namespace normexp::data
