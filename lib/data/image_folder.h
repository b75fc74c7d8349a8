#pragma once
// A dataset stored as image files in class folders — `<split>/<class>/<image>` as ImageNet's
// train/ and val/ after `normexp data prepare imagenet`, and torchvision's ImageFolder — listed
// without reading any image.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace normexp::data {

struct ImageFiles {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::vector<std::string> classes;  // folder names in label order (WordNet ids for ImageNet)
  int64_t size() const { return static_cast<int64_t>(paths.size()); }
};

// The JPEG files (.jpeg/.jpg in any case) of `dir`'s class folders. Labels follow `classes`
// when given (a validation split labelled like its training split: a folder not in it is an
// error), else the folders' names in sorted order, as ImageFolder. Files sorted by name;
// hidden files (a `.` first) skipped. RunError naming `dir` when it is missing, has no class
// folders, or a class folder holds a file that is not a JPEG.
ImageFiles scan_image_folder(const std::filesystem::path& dir,
                             const std::vector<std::string>* classes = nullptr);

// `count` files spread evenly over `files` (the k-th of count is file floor(k * n / count)),
// so a subset keeps every class in proportion; all of them when count <= 0 or >= n.
ImageFiles spread_subset(const ImageFiles& files, int64_t count);

}  // namespace normexp::data
