#include "data/imagenet.h"

#include <fmt/core.h>

#include "core/error.h"
#include "data/image_folder.h"
#include "data/jpeg.h"
#include "data/jpeg_loader.h"

namespace normexp::data {

namespace fs = std::filesystem;

namespace {
// The class folders of root/train, without listing their images (shape() must be cheap).
int64_t count_classes(const fs::path& train) {
  std::error_code ec;
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(train, ec))
    if (e.is_directory() && e.path().filename().string().rfind('.', 0) != 0) ++n;
  return n;
}

int64_t count_files(const fs::path& split) {
  std::error_code ec;
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(split, ec))
    if (e.is_regular_file()) ++n;
  return n;
}
}  // namespace

std::vector<config::OptionSpec> ImageNetDataset::options() {
  using config::at_least;
  using config::opt_float;
  using config::opt_int;
  return {
      config::unhashed(config::opt_string(
          "root", kImageNetRoot,
          "directory holding train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (`normexp data "
          "prepare imagenet` makes it from ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar "
          "and the devkit)")),
      opt_int("image_size", 224, "side of the network's input crops (He et al. 2016: 224)",
              config::between(8, 1024)),
      opt_int("resize", 256, "evaluation: shorter side resized to this, then the central "
              "image_size crop (He et al. 2016: 256)", config::between(8, 2048)),
      opt_float("scale_min", 0.08, "training: smallest crop area as a fraction of the image "
                 "(Szegedy et al. 2015's random-resized crop: 0.08 to 1)",
                 config::between(0.001, 1.0)),
      opt_int("train_size", 0, "use N training images spread evenly over the classes (0: all)",
              at_least(0)),
      opt_int("test_size", 0, "use N validation images spread evenly (0: all 50,000)",
              at_least(0)),
      config::unhashed(config::opt_bool(
          "official_counts", true,
          "refuse a copy whose counts differ from ILSVRC 2012's 1,281,167 / 50,000 images of "
          "1,000 classes (false: any class-folder dataset, e.g. a subset or Imagenette)")),
      config::unhashed(opt_int("workers", 0,
                               "decoding threads (0: one per core); results do not depend on it",
                               at_least(0))),
      config::unhashed(opt_int("prefetch", 0,
                               "batches decoded ahead of the trainer (0: two per worker)",
                               at_least(0))),
  };
}

ImageNetDataset::ImageNetDataset(const config::Params& p)
    : root_(p.get_string("root")),
      image_size_(p.get_int("image_size")),
      resize_(p.get_int("resize")),
      scale_min_(p.get_float("scale_min")),
      train_size_(p.get_int("train_size")),
      test_size_(p.get_int("test_size")),
      classes_(kImageNetClasses),
      official_(p.get_bool("official_counts")),
      workers_(static_cast<int>(p.get_int("workers"))),
      prefetch_(static_cast<int>(p.get_int("prefetch"))) {
  IssueCollector issues;
  if (p.get_string("augment") == "fastaa")
    issues([&] { throw p.error("augment", "the Fast AutoAugment policy here is CIFAR's; ImageNet takes standard (random-resized crop + flip) or none"); });
  if (p.get_int("cutout") > 0)
    issues([&] { throw p.error("cutout", "Cutout is not part of the ImageNet recipes; use 0"); });
  if (resize_ < image_size_)
    issues([&] { throw p.error("resize", fmt::format("is {}, smaller than image_size {}: the centre crop would not fit", resize_, image_size_)); });
  if (official_ && train_size_ > kImageNetTrain)
    issues([&] { throw p.error("train_size", fmt::format("is {} but ImageNet has {} training images", train_size_, kImageNetTrain)); });
  if (official_ && test_size_ > kImageNetVal)
    issues([&] { throw p.error("test_size", fmt::format("is {} but ImageNet has {} validation images", test_size_, kImageNetVal)); });
  issues.throw_if_any();
  if (!official_) {  // whatever the folders hold
    classes_ = std::max<int64_t>(1, count_classes(root_ / "train"));
    const int64_t n = count_files(root_ / "train");
    if (train_size_ == 0 || train_size_ > n) train_size_ = n;
  } else if (train_size_ == 0) {
    train_size_ = kImageNetTrain;
  }
}

DataShape ImageNetDataset::shape() const {
  DataShape s;
  s.channels = 3;
  s.height = s.width = image_size_;
  s.classes = classes_;
  return s;
}

ImageData ImageNetDataset::load() const {
  auto train = std::make_shared<ImageFiles>(scan_image_folder(root_ / "train"));
  auto test = std::make_shared<ImageFiles>(scan_image_folder(root_ / "val", &train->classes));
  const std::string how =
      "; give data.official_counts=false for another class-folder dataset, or run `normexp "
      "data prepare imagenet` again";
  if (official_) {
    if (static_cast<int64_t>(train->classes.size()) != kImageNetClasses)
      throw RunError(fmt::format("{}: {} class folders, ImageNet has {}{}",
                                 (root_ / "train").string(), train->classes.size(),
                                 kImageNetClasses, how));
    if (train->size() != kImageNetTrain || test->size() != kImageNetVal)
      throw RunError(fmt::format("{}: {} training and {} validation images, ImageNet has {} and "
                                 "{}{}",
                                 root_.string(), train->size(), test->size(), kImageNetTrain,
                                 kImageNetVal, how));
  }
  ImageData d;
  d.modality = Modality::Files;
  d.shape = shape();
  d.shape.classes = static_cast<int64_t>(train->classes.size());
  d.mean = kImageNetMean;
  d.std = kImageNetStd;
  auto files = std::make_shared<JpegFiles>();
  files->train = std::make_shared<const ImageFiles>(spread_subset(*train, train_size_));
  files->test = std::make_shared<const ImageFiles>(spread_subset(*test, test_size_));
  files->augment.size = static_cast<int>(image_size_);
  files->augment.resize = static_cast<int>(resize_);
  files->augment.scale_min = scale_min_;
  files->workers = workers_;
  files->prefetch = prefetch_;
  d.files = files;
  d.description = fmt::format("ImageNet-layout JPEGs in {}: {} of {} training and {} of {} "
                              "validation images, {} classes, {}x{} crops",
                              root_.string(), files->train->size(), train->size(),
                              files->test->size(), test->size(), train->classes.size(),
                              image_size_, image_size_);
  return d;
}

}  // namespace normexp::data
