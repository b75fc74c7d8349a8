// ModelNet40 in its HDF5 layout (files these tests write with the HDF5 library), EdgeConv's
// graph against a brute-force reference, and a tiny DGCNN that learns generated shapes.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <algorithm>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "compose/components.h"
#include "compose/run.h"
#include "config/test_support.h"
#include "core/fs.h"
#include "data/modelnet40.h"
#include "models/dgcnn.h"
#include "support/ml_support.h"
#include "support/reference_nets.h"

namespace normexp {
namespace {

namespace fs = std::filesystem;

// `data` float32 (M, P, 3) and `label` uint8 (M, 1), as in the release.
void write_h5(const fs::path& path, const at::Tensor& points, const at::Tensor& labels,
              const char* data_name = "data", const char* label_name = "label") {
  H5::H5File f(path.string(), H5F_ACC_TRUNC);
  const auto p = points.to(torch::kFloat).contiguous();
  hsize_t dims[3] = {static_cast<hsize_t>(p.size(0)), static_cast<hsize_t>(p.size(1)),
                     static_cast<hsize_t>(p.size(2))};
  H5::DataSpace space(3, dims);
  f.createDataSet(data_name, H5::PredType::NATIVE_FLOAT, space)
      .write(p.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
  const auto l = labels.to(torch::kUInt8).contiguous();
  hsize_t ldims[2] = {static_cast<hsize_t>(l.size(0)), 1};
  H5::DataSpace lspace(2, ldims);
  f.createDataSet(label_name, H5::PredType::NATIVE_UINT8, lspace)
      .write(l.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
}

// Three classes of shapes, 2048 points each, in the unit ball: a sphere's surface, a cube's
// surface, and a thin vertical cylinder; each jittered and turned about the up axis (y).
std::pair<at::Tensor, at::Tensor> shapes(int64_t m, int64_t seed) {
  torch::manual_seed(seed);
  const int64_t p = data::kModelNet40FilePoints;
  auto labels = torch::arange(m) % 3;
  std::vector<at::Tensor> clouds;
  for (int64_t i = 0; i < m; ++i) {
    at::Tensor c;
    const int64_t cls = labels[i].item<int64_t>();
    if (cls == 0) {
      c = torch::randn({p, 3});
      c = c / c.norm(2, 1, true) * 0.9;
    } else if (cls == 1) {
      c = torch::rand({p, 3}) * 1.1 - 0.55;  // push one coordinate to a face
      auto face = torch::randint(3, {p});
      auto sign = torch::randint(2, {p}).to(torch::kFloat) * 1.1 - 0.55;
      c.scatter_(1, face.view({-1, 1}), sign.view({-1, 1}));
    } else {
      auto t = torch::rand({p}) * 2 * M_PI;
      c = torch::stack({0.2 * t.cos(), torch::rand({p}) * 1.8 - 0.9, 0.2 * t.sin()}, 1);
    }
    const double a = torch::rand({1}).item<double>() * 2 * M_PI;
    auto r = torch::tensor({{std::cos(a), 0.0, std::sin(a)}, {0.0, 1.0, 0.0},
                            {-std::sin(a), 0.0, std::cos(a)}}).to(torch::kFloat);
    clouds.push_back(torch::matmul(c, r) + torch::randn({p, 3}) * 0.02);
  }
  return {torch::stack(clouds), labels};
}

class ModelNet40Files : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [a, la] = shapes(40, 1);
    auto [b, lb] = shapes(20, 2);
    auto [t, lt] = shapes(24, 3);
    write_h5(dir.path() / "ply_data_train0.h5", a, la);
    write_h5(dir.path() / "ply_data_train1.h5", b, lb);
    write_h5(dir.path() / "ply_data_test0.h5", t, lt);
    train_first_ = a[0];
  }
  testing::TempDir dir;
  at::Tensor train_first_;
};

TEST_F(ModelNet40Files, LoadsFilesInOrderWithTheFirstPoints) {
  data::ModelNet40Dataset ds(dir.path(), 60, 24, 256, 3);
  const auto d = ds.load();
  EXPECT_EQ(d.modality, data::Modality::Points);
  EXPECT_EQ(ds.modality(), d.modality);  // known before loading (bench's pipeline)
  EXPECT_EQ(d.train_x.sizes(), (std::vector<int64_t>{60, 3, 256, 1}));
  EXPECT_EQ(d.test_x.sizes(), (std::vector<int64_t>{24, 3, 256, 1}));
  EXPECT_EQ(d.train_x.scalar_type(), torch::kFloat);
  // Shape 0 of train0 comes first, as (3, points): its first 256 points, transposed.
  EXPECT_TRUE(d.train_x[0].squeeze(2).equal(train_first_.narrow(0, 0, 256).t()));
  EXPECT_TRUE(d.train_y.equal(torch::cat({torch::arange(40) % 3, torch::arange(20) % 3})));
  EXPECT_EQ(ds.shape().height, 256);
  EXPECT_EQ(ds.shape().width, 1);
}

TEST_F(ModelNet40Files, BadFilesAreNamed) {
  auto message = [&](int64_t train, int64_t test, int64_t points = 256) {
    try {
      data::ModelNet40Dataset(dir.path(), train, test, points, 3).load();
    } catch (const RunError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(61, 24).find("60 shapes in 2 file(s), expected 61"), std::string::npos);
  // Labels out of range for 2 classes.
  try {
    data::ModelNet40Dataset(dir.path(), 60, 24, 256, 2).load();
    ADD_FAILURE() << "labels 0..2 accepted for 2 classes";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find("ply_data_train0.h5: labels range 0..2, expected 0..1"),
              std::string::npos) << e.what();
  }
  // A file that is not HDF5, one without labels, one with 2-d points.
  write_file_atomic(dir.path() / "ply_data_test1.h5", "not hdf5 at all");
  EXPECT_NE(message(60, 24).find("ply_data_test1.h5: cannot be read as HDF5"), std::string::npos)
      << message(60, 24);
  write_h5(dir.path() / "ply_data_test1.h5", torch::zeros({2, 300, 3}), torch::zeros({2}), "data",
           "labels");
  EXPECT_NE(message(60, 26).find("ply_data_test1.h5: no dataset 'label'"), std::string::npos);
  write_h5(dir.path() / "ply_data_test1.h5", torch::zeros({2, 300, 2}), torch::zeros({2}));
  EXPECT_NE(message(60, 26).find("'data' is 2x300x2, expected Mx(>= 256)x3"), std::string::npos)
      << message(60, 26);
  fs::remove(dir.path() / "ply_data_test1.h5");
  EXPECT_NE(message(60, 24, 4096).find("expected Mx(>= 4096)x3"), std::string::npos);
  // The registered dataset checks the official counts unless told otherwise.
  auto exp = testing::experiment_from(
      dir, "data: {name: modelnet40, root: " + dir.path().string() + "}\n");
  EXPECT_THROW(compose::build(exp, c10::Device(c10::kCPU)).dataset->load(), RunError);
}

TEST(Dgcnn, KnnMatchesBruteForce) {
  torch::manual_seed(0);
  const auto x = torch::randn({2, 5, 30}, torch::kDouble);
  const auto idx = models::knn(x, 6);
  ASSERT_EQ(idx.sizes(), (std::vector<int64_t>{2, 30, 6}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 30; ++i) {
      std::vector<std::pair<double, int64_t>> d;
      for (int64_t j = 0; j < 30; ++j)
        d.push_back({(x[b].select(1, i) - x[b].select(1, j)).pow(2).sum().item<double>(), j});
      std::sort(d.begin(), d.end());
      std::set<int64_t> want, got;
      for (int k = 0; k < 6; ++k) {
        want.insert(d[k].second);
        got.insert(idx[b][i][k].item<int64_t>());
      }
      EXPECT_EQ(got, want) << "batch " << b << " point " << i;
      EXPECT_TRUE(got.count(i));  // a point is its own nearest neighbour
    }
  // Edge features: [x_j - x_i, x_i] for each neighbour j of i.
  const auto e = models::edge_features(x, idx);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 10, 30, 6}));
  const int64_t j = idx[1][7][3].item<int64_t>();
  EXPECT_TRUE(torch::allclose(e[1].select(1, 7).select(1, 3).narrow(0, 0, 5),
                              x[1].select(1, j) - x[1].select(1, 7)));
  EXPECT_TRUE(torch::allclose(e[1].select(1, 7).select(1, 3).narrow(0, 5, 5), x[1].select(1, 7)));
}

// Wang et al. 2019's DGCNN classifier against a re-implementation here, with BN statistics
// randomized: per EdgeConv layer the k nearest neighbours (brute force) of every point in the
// previous layer's features, h(x_i, x_j) = LeakyReLU_0.2(BN(W [x_j - x_i, x_i])) maxed over
// the neighbours; the layers' outputs concatenated, a 1x1 conv - BN - LeakyReLU to emb_dims,
// max- and mean-pooled over the points and concatenated; then 512 and 256 (each 1x1 conv - BN
// - LeakyReLU; dropout is off in eval) and a Linear.
TEST(Dgcnn, ForwardIsWangEtAlsArchitecture) {
  using testing::named_tensor;
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir,
      "data: {name: synthetic, classes: 5, resolution: 4, train_size: 8, test_size: 4}\n"
      "model: {name: dgcnn, k: 5, widths: [8, 12], emb_dims: 16}\nnorm: {name: bn}\n");
  auto b = compose::build(exp, c10::Device(c10::kCPU));
  auto& model = *b.model;
  testing::randomize_batch_norms(model);
  auto block = [&](const std::string& at, const torch::Tensor& x) {  // x: (rows, in)
    const auto w = named_tensor(model, at + ".0.weight").flatten(1);  // (out, in)
    auto y = torch::matmul(x, w.t());
    if (testing::has_tensor(model, at + ".0.bias")) y = y + named_tensor(model, at + ".0.bias");
    // BN over the channel (last) dim: eval_batch_norm takes channels in dim 1.
    y = testing::eval_batch_norm(model, at + ".1", y.reshape({-1, y.size(-1)}))
            .view(y.sizes());
    return torch::leaky_relu(y, 0.2);
  };
  torch::manual_seed(5);
  const auto images = torch::randn({2, 3, 4, 4}, torch::kDouble);
  const int64_t B = 2, N = 16, k = 5;
  std::vector<torch::Tensor> per_sample;
  for (int64_t s = 0; s < B; ++s) {
    auto x = images[s].reshape({3, N}).t();  // (N, C): points as rows
    std::vector<torch::Tensor> layers;
    for (const char* edge : {"edge1", "edge2"}) {
      std::vector<torch::Tensor> rows;
      for (int64_t i = 0; i < N; ++i) {
        std::vector<std::pair<double, int64_t>> d;
        for (int64_t j = 0; j < N; ++j)
          d.push_back({(x[j] - x[i]).pow(2).sum().item<double>(), j});
        std::sort(d.begin(), d.end());
        std::vector<torch::Tensor> e;
        for (int64_t n = 0; n < k; ++n) e.push_back(torch::cat({x[d[n].second] - x[i], x[i]}));
        rows.push_back(std::get<0>(block(edge, torch::stack(e)).max(0)));
      }
      x = torch::stack(rows);  // (N, C')
      layers.push_back(x);
    }
    const auto p = block("point", torch::cat(layers, 1));  // (N, emb)
    const auto pooled = torch::cat({std::get<0>(p.max(0)), p.mean(0)});
    const auto h = block("head2", block("head1", pooled.unsqueeze(0)));
    per_sample.push_back(torch::linear(h, named_tensor(model, "classifier.weight"),
                                       named_tensor(model, "classifier.bias")));
  }
  const auto want = torch::cat(per_sample);
  torch::NoGradGuard no_grad;
  const auto got = model.forward(images);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(got.allclose(want, 1e-10, 1e-12)) << (got - want).abs().max().item<double>();
}

// A tiny DGCNN on the generated shapes through `normexp run`'s path: it learns them (the
// classes differ only in geometry, and each shape is turned about the up axis).
TEST_F(ModelNet40Files, TinyDgcnnLearnsTheShapes) {
  auto exp = testing::experiment_from(
      dir,
      "name: mn40\n"
      "data: {name: modelnet40, root: " + dir.path().string() +
          ", points: 128, official_counts: false}\n"
          "model: {name: dgcnn, k: 8, widths: [16, 16, 32, 32], emb_dims: 64, dropout: 0.2}\n"
          "norm: {name: bn}\noptim: {name: sgd, lr: 0.05}\n"
          "train: {epochs: 8, batch_size: 12, threads: 2, progress: none}\n"
          "output: {root: " + (dir.path() / "results").string() + "}\n");
  const auto r = compose::run_experiment(exp);
  ASSERT_EQ(r.status, train::RunStatus::Completed);
  const auto& h = r.metrics["history"];
  const double first = h.front()["train_loss"].get<double>();
  const double last = h.back()["train_loss"].get<double>();
  EXPECT_LT(last, 0.5 * std::log(3.0)) << "stuck near ln 3: " << h.dump();
  EXPECT_LT(last, first);
  EXPECT_GE(h.back()["test_acc"].get<double>(), 80.0) << h.dump();
  // Mean class accuracy: the three classes are balanced in the test split, so it is close to
  // the overall accuracy (equal when every class is equally right).
  EXPECT_NEAR(h.back()["test_mean_class_acc"].get<double>(), h.back()["test_acc"].get<double>(),
              10.0);
}

}  // namespace
}  // namespace normexp
