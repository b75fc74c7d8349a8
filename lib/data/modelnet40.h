#pragma once
// ModelNet40 [Wu et al. 2015] as DGCNN and PointNet read it: the HDF5 release
// `modelnet40_ply_hdf5_2048` (ply_data_train0..4.h5, ply_data_test0..1.h5), each file holding
// `data` (M x 2048 x 3 float32: points sampled uniformly on the mesh faces by area, normalized
// into the unit sphere) and `label` (M x 1 integers, 0..39), with `shape_names.txt` naming the
// classes. 9,843 training and 2,468 test shapes. Ikami et al. 2021 §4.2.1 (after Wang et al.
// 2019) use the first 1,024 points of each shape.
//
// Read with the HDF5 C++ library (Debian's libhdf5-dev); built only when it was found.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "config/schema.h"
#include "data/dataset.h"

namespace normexp::data {

inline constexpr const char* kModelNet40Root = "data/modelnet40_ply_hdf5_2048";
inline constexpr int64_t kModelNet40Train = 9843, kModelNet40Test = 2468;
inline constexpr int64_t kModelNet40Classes = 40, kModelNet40FilePoints = 2048;

// One file: float (M, P, 3) points and int64 (M) labels. RunError naming the file for a file
// that HDF5 cannot open, a missing `data` or `label`, a wrong rank or shape, fewer than
// `min_points` points, counts that differ, or a label outside 0..classes-1.
std::pair<at::Tensor, at::Tensor> read_modelnet40_file(const std::filesystem::path& path,
                                                       int64_t min_points, int64_t classes);

// The split's files in `root` ("train" or "test"): ply_data_<split>N.h5 in the order of N.
std::vector<std::filesystem::path> modelnet40_files(const std::filesystem::path& root,
                                                    const std::string& split);

class ModelNet40Dataset : public Dataset {
 public:
  // From the data section: root, points, train_size, test_size (augment: standard means the
  // paper's rotation about the up axis and jitter; fastaa and cutout are refused).
  explicit ModelNet40Dataset(const config::Params& p);
  // Tests: files holding `train_count` / `test_count` shapes (tiny ones) under `root`.
  ModelNet40Dataset(std::filesystem::path root, int64_t train_count, int64_t test_count,
                    int64_t points, int64_t classes = kModelNet40Classes);

  DataShape shape() const override;  // channels 3 (x, y, z), height = points, width 1
  int64_t train_size() const override { return train_size_; }
  ImageData load() const override;
  Modality modality() const override { return Modality::Points; }

  static std::vector<config::OptionSpec> options();
  // Whether this build reads HDF5 (else load() says how to get a build that does).
  static bool available();

 private:
  std::filesystem::path root_;
  int64_t train_count_, test_count_, points_, classes_;
  int64_t train_size_, test_size_;
  bool official_ = true;  // counts are the release's (the message says how to accept others)
};

}  // namespace normexp::data
