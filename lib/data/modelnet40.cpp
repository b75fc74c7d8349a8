#include "data/modelnet40.h"

#include <torch/torch.h>

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#ifdef NORMEXP_WITH_HDF5
#include <H5Cpp.h>
#endif

#include "core/error.h"

namespace normexp::data {

namespace fs = std::filesystem;

bool ModelNet40Dataset::available() {
#ifdef NORMEXP_WITH_HDF5
  return true;
#else
  return false;
#endif
}

std::vector<fs::path> modelnet40_files(const fs::path& root, const std::string& split) {
  const std::regex name("ply_data_" + split + "([0-9]+)\\.h5");
  std::vector<std::pair<int, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string file = e.path().filename().string();
    if (std::regex_match(file, m, name)) found.emplace_back(std::stoi(m[1]), e.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [n, p] : found) out.push_back(p);
  return out;
}

namespace {
// Shapes in a split's files, from their headers (0 when there are none or HDF5 cannot say).
int64_t count_shapes(const fs::path& root, const std::string& split) {
  int64_t total = 0;
#ifdef NORMEXP_WITH_HDF5
  H5::Exception::dontPrint();
  for (const auto& f : modelnet40_files(root, split)) {
    try {
      H5::H5File h5(f.string(), H5F_ACC_RDONLY);
      hsize_t dims[3] = {0, 0, 0};
      H5::DataSpace space = h5.openDataSet("data").getSpace();
      if (space.getSimpleExtentNdims() == 3) space.getSimpleExtentDims(dims);
      total += static_cast<int64_t>(dims[0]);
    } catch (const H5::Exception&) {
      // load() names the file and the problem
    }
  }
#else
  (void)root;
  (void)split;
#endif
  return total;
}
}  // namespace

std::pair<at::Tensor, at::Tensor> read_modelnet40_file(const fs::path& path, int64_t min_points,
                                                       int64_t classes) {
#ifdef NORMEXP_WITH_HDF5
  const std::string file = path.string();
  auto fail = [&](const std::string& what) { return RunError("ModelNet40 file " + file + ": " + what); };
  H5::Exception::dontPrint();
  at::Tensor points, labels;
  try {
    H5::H5File h5(file, H5F_ACC_RDONLY);
    for (const char* name : {"data", "label"})
      if (!h5.nameExists(name)) throw fail(fmt::format("no dataset '{}' (expected 'data' and 'label')", name));
    H5::DataSet data = h5.openDataSet("data");
    H5::DataSpace space = data.getSpace();
    if (space.getSimpleExtentNdims() != 3)
      throw fail(fmt::format("'data' has {} dimensions, expected 3 (shapes x points x 3)",
                             space.getSimpleExtentNdims()));
    hsize_t dims[3];
    space.getSimpleExtentDims(dims);
    if (dims[2] != 3 || static_cast<int64_t>(dims[1]) < min_points)
      throw fail(fmt::format("'data' is {}x{}x{}, expected Mx(>= {})x3", dims[0], dims[1],
                             dims[2], min_points));
    points = torch::empty({static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]), 3},
                          torch::kFloat);
    data.read(points.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);

    H5::DataSet label = h5.openDataSet("label");
    H5::DataSpace lspace = label.getSpace();
    const int lrank = lspace.getSimpleExtentNdims();
    hsize_t ldims[2] = {0, 1};
    if (lrank < 1 || lrank > 2) throw fail(fmt::format("'label' has {} dimensions, expected 1 or 2", lrank));
    lspace.getSimpleExtentDims(ldims);
    if (ldims[0] != dims[0] || (lrank == 2 && ldims[1] != 1))
      throw fail(fmt::format("{} labels for {} shapes", lrank == 2 ? ldims[0] * ldims[1] : ldims[0],
                             dims[0]));
    labels = torch::empty({static_cast<int64_t>(ldims[0])}, torch::kLong);
    label.read(labels.data_ptr<int64_t>(), H5::PredType::NATIVE_INT64);
  } catch (const H5::Exception& e) {
    throw fail("cannot be read as HDF5 (" + e.getDetailMsg() + ")");
  }
  if (!torch::isfinite(points).all().item<bool>()) throw fail("'data' holds non-finite coordinates");
  if (labels.numel() > 0) {
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= classes)
      throw fail(fmt::format("labels range {}..{}, expected 0..{}", lo, hi, classes - 1));
  }
  return {points, labels};
#else
  (void)min_points;
  (void)classes;
  throw RunError("cannot read " + path.string() +
                 ": this normexp was built without HDF5 (apt-get install libhdf5-dev, then "
                 "rebuild: scripts/setup.sh)");
#endif
}

std::vector<config::OptionSpec> ModelNet40Dataset::options() {
  using config::at_least;
  using config::opt_int;
  return {
      config::unhashed(config::opt_string(
          "root", kModelNet40Root,
          "directory holding ply_data_train*.h5 and ply_data_test*.h5 (the "
          "modelnet40_ply_hdf5_2048 release that PointNet and DGCNN use)")),
      opt_int("points", 1024,
              "points per shape: the first N of the file's 2,048 (Wang et al. 2019: 1,024)",
              config::between(1, kModelNet40FilePoints)),
      opt_int("train_size", 0, "use the first N training shapes (0: all 9,843)", at_least(0)),
      opt_int("test_size", 0, "use the first N test shapes (0: all 2,468)", at_least(0)),
      config::unhashed(config::opt_bool(
          "official_counts", true,
          "refuse files whose shape counts differ from the release's 9,843 / 2,468 (false: "
          "any counts, e.g. a re-sampled or reduced copy)")),
  };
}

ModelNet40Dataset::ModelNet40Dataset(const config::Params& p)
    : root_(p.get_string("root")),
      train_count_(kModelNet40Train),
      test_count_(kModelNet40Test),
      points_(p.get_int("points")),
      classes_(kModelNet40Classes),
      train_size_(p.get_int("train_size")),
      test_size_(p.get_int("test_size")) {
  IssueCollector issues;
  if (p.get_string("augment") == "fastaa" || p.get_string("augment") == "randaugment")
    issues([&] {
      throw p.error("augment", p.get_string("augment") +
                                   " is an image policy; point clouds take standard (rotation "
                                   "about the up axis + jitter) or none");
    });
  if (p.get_int("cutout") > 0)
    issues([&] { throw p.error("cutout", "Cutout is for images; use 0 with modelnet40"); });
  for (const char* key : {"mixup", "cutmix", "random_erasing"})
    if (p.get_float(key) > 0)
      issues([&] {
        throw p.error(key, std::string(key) + " is for images; use 0 with modelnet40");
      });
  if (train_size_ > train_count_)
    issues([&] { throw p.error("train_size", fmt::format("is {} but ModelNet40 has {} training shapes", train_size_, train_count_)); });
  if (test_size_ > test_count_)
    issues([&] { throw p.error("test_size", fmt::format("is {} but ModelNet40 has {} test shapes", test_size_, test_count_)); });
  issues.throw_if_any();
  if (!p.get_bool("official_counts")) {  // whatever the files hold
    train_count_ = count_shapes(root_, "train");
    test_count_ = count_shapes(root_, "test");
    official_ = false;
  }
  if (train_size_ == 0) train_size_ = train_count_;
  if (test_size_ == 0) test_size_ = test_count_;
}

ModelNet40Dataset::ModelNet40Dataset(fs::path root, int64_t train_count, int64_t test_count,
                                     int64_t points, int64_t classes)
    : root_(std::move(root)),
      train_count_(train_count),
      test_count_(test_count),
      points_(points),
      classes_(classes),
      train_size_(train_count),
      test_size_(test_count),
      official_(false) {}

DataShape ModelNet40Dataset::shape() const {
  DataShape s;
  s.channels = 3;
  s.height = points_;
  s.width = 1;
  s.classes = classes_;
  return s;
}

ImageData ModelNet40Dataset::load() const {
  torch::NoGradGuard no_grad;
  std::error_code ec;
  if (!fs::is_directory(root_, ec))
    throw RunError(fmt::format(
        "ModelNet40 data not found: '{}' is not a directory; it should hold the "
        "modelnet40_ply_hdf5_2048 release (ply_data_train0..4.h5, ply_data_test0..1.h5) "
        "that PointNet and DGCNN use: unzip modelnet40_ply_hdf5_2048.zip and set data.root "
        "to that folder (`normexp data` does not fetch it: its published address, "
        "shapenet.cs.stanford.edu, no longer serves it)",
        root_.string()));
  auto read_split = [&](const std::string& split, int64_t count, int64_t size, at::Tensor& x,
                        at::Tensor& y) {
    const auto files = modelnet40_files(root_, split);
    if (files.empty())
      throw RunError(fmt::format("ModelNet40: no ply_data_{}*.h5 in {}", split, root_.string()));
    std::vector<at::Tensor> xs, ys;
    int64_t total = 0;
    for (const auto& f : files) {
      auto [points, labels] = read_modelnet40_file(f, points_, classes_);
      total += points.size(0);
      // The first `points_` of each shape, as (M, 3, points, 1); a copy, not a view.
      xs.push_back(points.narrow(1, 0, points_).permute({0, 2, 1}).unsqueeze(3).contiguous());
      ys.push_back(labels);
    }
    if (total != count)
      throw RunError(fmt::format(
          "ModelNet40 {} split in {}: {} shapes in {} file(s), expected {}{}", split,
          root_.string(), total, files.size(), count,
          official_ ? " (the official release; data.official_counts: false accepts others)" : ""));
    x = torch::cat(xs);
    y = torch::cat(ys);
    if (size > total)
      throw RunError(fmt::format("ModelNet40 {} split in {}: {} shapes asked for (data.{}_size), "
                                 "the files hold {}",
                                 split, root_.string(), size, split, total));
    if (size < total) {
      x = x.narrow(0, 0, size).clone();
      y = y.narrow(0, 0, size).clone();
    }
  };
  ImageData d;
  read_split("train", train_count_, train_size_, d.train_x, d.train_y);
  read_split("test", test_count_, test_size_, d.test_x, d.test_y);
  d.modality = Modality::Points;
  d.shape = shape();
  d.description = fmt::format("ModelNet40 {} classes, {} points, {} train / {} test shapes",
                              classes_, points_, d.train_x.size(0), d.test_x.size(0));
  return d;
}

}  // namespace normexp::data
