#include "data/fashion_mnist.h"

#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"

namespace normexp::data {

namespace fs = std::filesystem;

namespace {
constexpr uint32_t kImagesMagic = 0x00000803, kLabelsMagic = 0x00000801;
constexpr int64_t kClasses = 10;
constexpr int64_t kImageBytes = kFashionMnistSide * kFashionMnistSide;

// Said wherever files are missing. `normexp data fetch|prepare` is how the CIFAR data gets
// there; naming it here saves looking for a Fashion-MNIST variant of it.
std::string install_hint() {
  return fmt::format(
      "install it with `sudo apt-get install dataset-fashion-mnist` (which puts the files in "
      "{}; `normexp data fetch` is for CIFAR only) or set data.root to a directory holding {}, "
      "{}, {} and {} (.gz or not)",
      kFashionMnistRoot, FashionMnistFiles::kTrainImages, FashionMnistFiles::kTrainLabels,
      FashionMnistFiles::kTestImages, FashionMnistFiles::kTestLabels);
}

// "<name>.gz" first, then "<name>", whichever way `path` was given.
std::pair<fs::path, fs::path> candidates(const fs::path& path) {
  std::string plain = path.string();
  if (plain.size() > 3 && plain.compare(plain.size() - 3, 3, ".gz") == 0)
    plain.resize(plain.size() - 3);
  return {fs::path(plain + ".gz"), fs::path(plain)};
}

std::string dimensions(uint32_t n) {
  return fmt::format("{} dimension{}", n, n == 1 ? "" : "s");
}

// What a magic number says, for the message when it is not the expected one.
std::string describe_magic(uint32_t magic) {
  if ((magic >> 16) != 0) return "not an IDX file";
  static const std::pair<uint32_t, const char*> kTypes[] = {{0x08, "uint8"},   {0x09, "int8"},
                                                            {0x0b, "int16"},   {0x0c, "int32"},
                                                            {0x0d, "float32"}, {0x0e, "float64"}};
  const char* type = nullptr;
  for (const auto& [code, name] : kTypes)
    if (((magic >> 8) & 0xff) == code) type = name;
  if (type == nullptr) return "not an IDX file";
  std::string s = fmt::format("IDX {} with {}", type, dimensions(magic & 0xff));
  if (magic == kImagesMagic) s += ", an images file";
  if (magic == kLabelsMagic) s += ", a labels file";
  return s;
}

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};

// Decompressed bytes of one file. zlib reads a file that is not gzip-compressed as it is
// ("transparent" mode), so one reader serves the .gz and the unpacked files.
class GzReader {
 public:
  explicit GzReader(fs::path path) : path_(std::move(path)) {
    errno = 0;
    file_.reset(gzopen(path_.c_str(), "rb"));
    if (!file_)
      throw RunError(fmt::format("cannot open '{}': {}", path_.string(),
                                 errno != 0 ? std::strerror(errno) : "out of memory"));
    gzbuffer(file_.get(), 1 << 18);  // fewer, larger reads of the compressed file
  }

  // Reads up to `n` bytes into `dst`; fewer only where the data ends. A damaged stream (bad
  // deflate data, wrong CRC, an I/O error) is a RunError; a stream cut short is not, it just
  // ends: the caller says what was missing, with stream_problem() for the detail.
  int64_t read(void* dst, int64_t n) {
    auto* out = static_cast<char*>(dst);
    int64_t got = 0;
    while (got < n) {
      // gzread takes an unsigned count and returns an int: stay well below INT_MAX.
      const auto chunk = static_cast<unsigned>(std::min<int64_t>(n - got, int64_t{1} << 24));
      const int r = gzread(file_.get(), out + got, chunk);
      if (r < 0)
        throw RunError(fmt::format("cannot read '{}': {} (the file is damaged)", path_.string(),
                                   stream_problem()));
      if (r == 0) break;
      got += r;
    }
    return got;
  }

  // zlib's complaint about the stream so far ("unexpected end of file" for a .gz cut short),
  // "" when there is none.
  std::string stream_problem() const {
    int err = Z_OK;
    const char* msg = gzerror(file_.get(), &err);
    if (err == Z_OK) return "";
    if (err == Z_ERRNO) return std::strerror(errno);
    if (msg == nullptr) return "zlib error " + std::to_string(err);
    // zlib puts the path in front, which every message here already names.
    std::string s = msg;
    const std::string prefix = path_.string() + ": ";
    return s.compare(0, prefix.size(), prefix) == 0 ? s.substr(prefix.size()) : s;
  }

  bool compressed() const { return gzdirect(file_.get()) == 0; }

 private:
  fs::path path_;
  std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser> file_;
};

uint32_t read_be32(GzReader& in, const fs::path& path, const char* field) {
  unsigned char b[4];
  if (in.read(b, 4) != 4) {
    const auto problem = in.stream_problem();
    throw RunError(fmt::format("'{}' is truncated or empty: the IDX header ends before its {}{}",
                               path.string(), field, problem.empty() ? "" : " (" + problem + ")"));
  }
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

void check_labels(const fs::path& path, const at::Tensor& labels) {
  const auto bad = labels.ge(kClasses).nonzero();
  if (bad.numel() == 0) return;
  const int64_t i = bad[0][0].item<int64_t>();
  throw RunError(fmt::format(
      "'{}': record {} has label {}, expected 0..{} ({} record(s) out of range); the file is "
      "corrupt or not a Fashion-MNIST labels file",
      path.string(), i, labels[i].item<int64_t>(), kClasses - 1, bad.size(0)));
}
}  // namespace

at::Tensor read_idx_file(const fs::path& requested, int expected_dims, int64_t expected_count) {
  if (expected_dims != 3 && expected_dims != 1)
    throw RunError(fmt::format("read_idx_file('{}'): expected_dims is {}, not 3 or 1",
                               requested.string(), expected_dims));
  const bool images = expected_dims == 3;
  const char* what = images ? "images" : "labels";

  const auto [gz, plain] = candidates(requested);
  std::error_code ec;
  const fs::path path = fs::is_regular_file(gz, ec) ? gz : plain;
  if (!fs::is_regular_file(path, ec))
    throw RunError(fmt::format("missing Fashion-MNIST {} file: neither '{}' nor '{}' exists; {}",
                               what, gz.string(), plain.string(), install_hint()));

  GzReader in(path);
  const std::string p = path.string();
  const uint32_t expected_magic = images ? kImagesMagic : kLabelsMagic;
  const uint32_t magic = read_be32(in, path, "magic number");
  if (magic != expected_magic)
    throw RunError(fmt::format(
        "'{}': magic number 0x{:08x} ({}), expected 0x{:08x} (IDX uint8 with {}, Fashion-MNIST "
        "{}); the file is corrupt or not a Fashion-MNIST {} file",
        p, magic, describe_magic(magic), expected_magic, dimensions(expected_dims), what, what));

  const int64_t n = read_be32(in, path, "record count");
  int64_t header = 8, record = 1;
  if (images) {
    const int64_t rows = read_be32(in, path, "row count");
    const int64_t cols = read_be32(in, path, "column count");
    header = 16;
    if (rows != kFashionMnistSide || cols != kFashionMnistSide)
      throw RunError(fmt::format("'{}': images are {}x{} (rows x columns), expected {}x{}", p, rows,
                                 cols, kFashionMnistSide, kFashionMnistSide));
    record = kImageBytes;
  }
  if (n != expected_count)
    throw RunError(
        fmt::format("'{}' holds {} {} (says its header), expected {}", p, n, what, expected_count));

  // Straight into the tensor's memory: the file's row-major layout is (N, 28, 28) already.
  auto data = images ? torch::empty({n, kFashionMnistSide, kFashionMnistSide}, torch::kUInt8)
                     : torch::empty({n}, torch::kUInt8);
  const int64_t want = n * record;
  const int64_t got = in.read(data.data_ptr<uint8_t>(), want);
  const char* unit = in.compressed() ? " (decompressed)" : "";
  if (got != want) {
    const auto problem = in.stream_problem();
    throw RunError(fmt::format(
        "'{}' is truncated: {} of the {} data bytes{} after the {}-byte header ({} {} of {} "
        "byte{}){}",
        p, got, want, unit, header, n, what, record, record == 1 ? "" : "s",
        problem.empty() ? "" : "; " + problem));
  }
  // Reading on to the end also makes zlib check the gzip trailer (CRC and length).
  int64_t extra = 0;
  char buf[4096];
  while (const int64_t r = in.read(buf, sizeof buf)) extra += r;
  if (extra != 0)
    throw RunError(fmt::format(
        "'{}' has {} byte(s){} after the {} {} its header declares ({} data bytes); the file is "
        "corrupt or not in this format",
        p, extra, unit, n, what, want));
  if (const auto problem = in.stream_problem(); !problem.empty())
    throw RunError(fmt::format("'{}' is truncated: the gzip stream ends early ({})", p, problem));

  if (images) return data;
  check_labels(path, data);
  return data.to(torch::kLong);
}

std::vector<config::OptionSpec> FashionMnistDataset::options() {
  using config::at_least;
  using config::between;
  using config::opt_int;
  return {
      config::unhashed(config::opt_string(
          "root", kFashionMnistRoot,
          fmt::format("directory holding the four IDX files, .gz or not (`apt-get install "
                      "dataset-fashion-mnist` puts them in {})",
                      kFashionMnistRoot))),
      // The paper's models (cnn9, CIFAR ResNet, WRN) were designed for 32x32 inputs and
      // downsample 32 -> 16 -> 8. Fashion-MNIST's background is black (0), so 2 pixels of
      // zeros on each side make its 28x28 images 32x32 without adding anything.
      opt_int("pad", 2,
              "zero pixels added on each side (2: 28x28 becomes 32x32, the CIFAR input size "
              "of cnn9, resnet and wrn)",
              at_least(0)),
      opt_int("channels", 1,
              "1: the grey channel; 3: it repeated, for models or augmentation that expect RGB",
              between(1, 3)),
      opt_int("train_size", 0, "use the first N training images (0: all 60000)", at_least(0)),
      opt_int("test_size", 0, "use the first N test images (0: all 10000)", at_least(0)),
  };
}

namespace {
// Each (key, message) wrong with these settings, for the constructors to report their way.
std::vector<std::pair<std::string, std::string>> problems(int64_t pad, int64_t channels,
                                                          int64_t train_size, int64_t train_count,
                                                          int64_t test_size, int64_t test_count) {
  std::vector<std::pair<std::string, std::string>> out;
  if (pad < 0) out.push_back({"pad", fmt::format("is {}; expected >= 0", pad)});
  if (channels != 1 && channels != 3)
    out.push_back({"channels", fmt::format("is {}; expected 1 (grey) or 3 (grey repeated as "
                                           "RGB)",
                                           channels)});
  for (const auto& [key, size, count, split] :
       {std::tuple{"train_size", train_size, train_count, "training"},
        std::tuple{"test_size", test_size, test_count, "test"}}) {
    if (size < 0) out.push_back({key, fmt::format("is {}; expected >= 0 (0: all)", size)});
    if (size > count)
      out.push_back(
          {key, fmt::format("is {} but there are only {} {} images", size, count, split)});
  }
  return out;
}
}  // namespace

FashionMnistDataset::FashionMnistDataset(const config::Params& p)
    : root_(p.get_string("root")),
      pad_(p.get_int("pad")),
      train_count_(kFashionMnistTrain),
      test_count_(kFashionMnistTest),
      channels_(p.get_int("channels")),
      train_size_(p.get_int("train_size")),
      test_size_(p.get_int("test_size")) {
  // Every problem at once, pointing at where each key was written.
  IssueCollector issues;
  // (Not a structured binding: C++17 lambdas cannot capture those; clang refuses.)
  for (const auto& problem :
       problems(pad_, channels_, train_size_, train_count_, test_size_, test_count_))
    issues([&] { throw p.error(problem.first, problem.second); });
  issues.throw_if_any();
  if (train_size_ == 0) train_size_ = train_count_;
  if (test_size_ == 0) test_size_ = test_count_;
}

FashionMnistDataset::FashionMnistDataset(fs::path root, int64_t pad, int64_t train_count,
                                         int64_t test_count, int64_t channels, int64_t train_size,
                                         int64_t test_size)
    : root_(std::move(root)),
      pad_(pad),
      train_count_(train_count),
      test_count_(test_count),
      channels_(channels),
      train_size_(train_size == 0 ? train_count : train_size),
      test_size_(test_size == 0 ? test_count : test_size) {
  const auto found = problems(pad, channels, train_size, train_count, test_size, test_count);
  if (!found.empty())
    throw RunError(fmt::format("fashion_mnist: data.{} {}", found[0].first, found[0].second));
}

DataShape FashionMnistDataset::shape() const {
  DataShape s;
  s.channels = channels_;
  s.height = s.width = kFashionMnistSide + 2 * pad_;
  s.classes = kClasses;
  return s;
}

ImageData FashionMnistDataset::load() const {
  torch::NoGradGuard no_grad;
  std::error_code ec;
  if (!fs::is_directory(root_, ec))
    throw RunError(fmt::format("Fashion-MNIST data not found: '{}' is not a directory; {}",
                               root_.string(), install_hint()));

  auto read_split = [&](const char* images, const char* labels, int64_t count, int64_t size,
                        at::Tensor& x, at::Tensor& y) {
    x = read_idx_file(root_ / images, 3, count);
    y = read_idx_file(root_ / labels, 1, count);
    // A copy, so the rest of the file's images do not stay in memory behind a view.
    if (size < count) {
      x = x.narrow(0, 0, size).clone();
      y = y.narrow(0, 0, size).clone();
    }
    x = x.unsqueeze(1);  // (N, 1, 28, 28)
    if (pad_ > 0) x = torch::constant_pad_nd(x, {pad_, pad_, pad_, pad_}, 0);
    if (channels_ == 3) x = x.expand({-1, 3, -1, -1}).contiguous();
  };

  ImageData out;
  out.shape = shape();
  read_split(FashionMnistFiles::kTrainImages, FashionMnistFiles::kTrainLabels, train_count_,
             train_size_, out.train_x, out.train_y);
  read_split(FashionMnistFiles::kTestImages, FashionMnistFiles::kTestLabels, test_count_,
             test_size_, out.test_x, out.test_y);
  // Of the padded images, the input the model sees: normalization then centres that.
  channel_stats(out.train_x, out.mean, out.std);

  auto of = [](int64_t size, int64_t count) {
    return size < count ? fmt::format("first {} of {}", size, count) : std::to_string(size);
  };
  const int64_t side = out.shape.height;
  out.description = fmt::format("fashion_mnist ({}): {} train / {} test, {}x{}{}{}", root_.string(),
                                of(train_size_, train_count_), of(test_size_, test_count_), side,
                                side, pad_ > 0 ? fmt::format(" (padded {})", pad_) : "",
                                channels_ == 3 ? ", grey repeated to 3 channels" : "");
  return out;
}

}  // namespace normexp::data
