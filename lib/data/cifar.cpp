#include "data/cifar.h"

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"

namespace normexp::data {

namespace fs = std::filesystem;

namespace {
constexpr int64_t kPixels = 3 * 32 * 32;

const char* pretty_name(CifarVariant v) {
  return v == CifarVariant::Cifar10 ? "CIFAR-10" : "CIFAR-100";
}

// The python version unpacks to a different directory; pointing at it is an easy mistake.
std::string python_dir(CifarVariant v) {
  return v == CifarVariant::Cifar10 ? "cifar-10-batches-py" : "cifar-100-python";
}

void check_labels(const fs::path& path, const at::Tensor& labels, int64_t classes,
                  const char* what) {
  const auto bad = labels.ge(classes).nonzero();
  if (bad.numel() == 0) return;
  const int64_t i = bad[0][0].item<int64_t>();
  throw RunError(fmt::format(
      "'{}': record {} has {}label {}, expected 0..{} ({} record(s) out of range); the file is "
      "corrupt or not in this format",
      path.string(), i, what, labels[i].item<int64_t>(), classes - 1, bad.size(0)));
}
}  // namespace

std::string cifar_name(CifarVariant v) {
  return v == CifarVariant::Cifar10 ? "cifar10" : "cifar100";
}

CifarVariant cifar_variant(const std::string& name) {
  if (name == "cifar10") return CifarVariant::Cifar10;
  if (name == "cifar100") return CifarVariant::Cifar100;
  throw RunError("unknown CIFAR dataset '" + name + "' (expected cifar10 or cifar100)");
}

int64_t cifar_label_bytes(CifarVariant v) { return v == CifarVariant::Cifar10 ? 1 : 2; }
int64_t cifar_record_bytes(CifarVariant v) { return cifar_label_bytes(v) + kPixels; }

int64_t CifarLayout::train_records() const {
  int64_t n = 0;
  for (const auto& f : train) n += f.records;
  return n;
}

int64_t CifarLayout::test_records() const {
  int64_t n = 0;
  for (const auto& f : test) n += f.records;
  return n;
}

CifarLayout official_cifar_layout(CifarVariant v) {
  CifarLayout l;
  if (v == CifarVariant::Cifar10) {
    l.dir = "cifar-10-batches-bin";
    for (int i = 1; i <= 5; ++i) l.train.push_back({fmt::format("data_batch_{}.bin", i), 10000});
    l.test.push_back({"test_batch.bin", 10000});
  } else {
    l.dir = "cifar-100-binary";
    l.train.push_back({"train.bin", 50000});
    l.test.push_back({"test.bin", 10000});
  }
  return l;
}

const CifarArchive& official_cifar_archive(CifarVariant v) {
  static const CifarArchive c10{"cifar-10-binary.tar.gz",
                                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                                "c32a1d4ab5d03f1284b67883e8d87530"};
  static const CifarArchive c100{"cifar-100-binary.tar.gz",
                                 "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                                 "03b5dce01913d631647c71ecec9e9cb8"};
  return v == CifarVariant::Cifar10 ? c10 : c100;
}

CifarRecords read_cifar_file(const fs::path& path, CifarVariant v, int64_t expected_records) {
  const int64_t record = cifar_record_bytes(v);
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw RunError(fmt::format("missing {} file '{}' (expected {} records of {} bytes)",
                               pretty_name(v), path.string(), expected_records, record));
  if (!fs::is_regular_file(path, ec))
    throw RunError(fmt::format("{} file '{}' is not a regular file", pretty_name(v), path.string()));
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) throw RunError("cannot read '" + path.string() + "': " + ec.message());
  if (size % record != 0)
    throw RunError(fmt::format(
        "'{}' is truncated or not a {} binary file: {} bytes is not a whole number of "
        "{}-byte records (expected {} records = {} bytes)",
        path.string(), pretty_name(v), size, record, expected_records,
        expected_records * record));
  const int64_t n = size / record;
  if (n != expected_records)
    throw RunError(fmt::format("'{}' holds {} records ({} bytes), expected {} ({} bytes)",
                               path.string(), n, size, expected_records,
                               expected_records * record));

  // One read of the whole file into a (N, record) tensor; columns are then sliced out.
  auto raw = torch::empty({n, record}, torch::kUInt8);
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw RunError(fmt::format("cannot open '{}': {}", path.string(),
                               errno != 0 ? std::strerror(errno) : "unknown error"));
  in.read(reinterpret_cast<char*>(raw.data_ptr<uint8_t>()), size);
  if (!in || in.gcount() != size)
    throw RunError(fmt::format("cannot read '{}': got {} of {} bytes ({})", path.string(),
                               static_cast<int64_t>(in.gcount()), size,
                               errno != 0 ? std::strerror(errno) : "the file ended early"));

  CifarRecords out;
  const int64_t lb = cifar_label_bytes(v);
  out.images = raw.narrow(1, lb, kPixels).contiguous().view({n, 3, 32, 32});
  if (v == CifarVariant::Cifar10) {
    out.labels = raw.select(1, 0).to(torch::kLong);
    check_labels(path, out.labels, 10, "");
  } else {
    out.coarse_labels = raw.select(1, 0).to(torch::kLong);
    out.labels = raw.select(1, 1).to(torch::kLong);
    check_labels(path, out.coarse_labels, 20, "coarse ");
    check_labels(path, out.labels, 100, "fine ");
  }
  return out;
}

void verify_cifar_files(const fs::path& dir, CifarVariant v, const CifarLayout& layout) {
  torch::NoGradGuard no_grad;
  for (const auto* files : {&layout.train, &layout.test})
    for (const auto& f : *files) read_cifar_file(dir / f.name, v, f.records);
}

std::string cifar_missing_message(CifarVariant v, const fs::path& root,
                                  const CifarLayout& layout) {
  const auto& archive = official_cifar_archive(v);
  const std::string name = cifar_name(v), r = root.string();
  std::string msg = fmt::format(
      "{} data not found: '{}' does not exist. Get it with\n"
      "    normexp data fetch {} --root {}\n"
      "or download {} (the binary version) from {} and run\n"
      "    normexp data prepare {} --from {} --root {}",
      pretty_name(v), (root / layout.dir).string(), name, r, archive.file_name, kCifarPage,
      name, archive.file_name, r);
  std::error_code ec;
  if (fs::exists(root / python_dir(v), ec))
    msg += fmt::format("\n('{}' is the python version, which normexp does not read)",
                       (root / python_dir(v)).string());
  return msg;
}

std::vector<config::OptionSpec> CifarDataset::options(CifarVariant v) {
  std::vector<config::OptionSpec> specs{config::unhashed(config::opt_string(
      "root", "data",
      "directory holding " + official_cifar_layout(v).dir + "/ (normexp data fetch|prepare " +
          cifar_name(v) + " puts it there)"))};
  if (v == CifarVariant::Cifar100)
    specs.push_back(config::opt_string(
        "label", "fine", "target: fine (100 classes, Ikami et al. 2021's experiments) or coarse (20)",
        {"fine", "coarse"}));
  return specs;
}

CifarDataset::CifarDataset(const config::Params& p, CifarVariant v)
    : CifarDataset(v, p.get_string("root"),
                   p.has("label") && p.get_string("label") == "coarse" ? CifarLabel::Coarse
                                                                       : CifarLabel::Fine,
                   official_cifar_layout(v)) {}

CifarDataset::CifarDataset(CifarVariant v, fs::path root, CifarLabel label, CifarLayout layout)
    : variant_(v),
      root_(std::move(root)),
      label_(v == CifarVariant::Cifar100 ? label : CifarLabel::Fine),
      layout_(std::move(layout)) {}

DataShape CifarDataset::shape() const {
  DataShape s;
  s.channels = 3;
  s.height = s.width = 32;
  s.classes = variant_ == CifarVariant::Cifar10 ? 10 : label_ == CifarLabel::Coarse ? 20 : 100;
  return s;
}

ImageData CifarDataset::load() const {
  torch::NoGradGuard no_grad;
  const fs::path dir = root_ / layout_.dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw RunError(cifar_missing_message(variant_, root_, layout_));

  auto read_split = [&](const std::vector<CifarFileSpec>& files, at::Tensor& x, at::Tensor& y) {
    std::vector<at::Tensor> xs, ys;
    for (const auto& f : files) {
      auto r = read_cifar_file(dir / f.name, variant_, f.records);
      xs.push_back(r.images);
      ys.push_back(label_ == CifarLabel::Coarse ? r.coarse_labels : r.labels);
    }
    x = xs.size() == 1 ? xs[0] : torch::cat(xs);
    y = ys.size() == 1 ? ys[0] : torch::cat(ys);
  };

  ImageData out;
  out.shape = shape();
  read_split(layout_.train, out.train_x, out.train_y);
  read_split(layout_.test, out.test_x, out.test_y);
  channel_stats(out.train_x, out.mean, out.std);
  out.description = fmt::format("{} ({}{}): {} train / {} test", cifar_name(variant_),
                                dir.string(),
                                variant_ == CifarVariant::Cifar10 ? ""
                                : label_ == CifarLabel::Coarse  ? ", coarse labels"
                                                                : ", fine labels",
                                out.train_x.size(0), out.test_x.size(0));
  return out;
}

}  // namespace normexp::data
