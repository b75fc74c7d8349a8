#include "data/image_folder.h"

#include <algorithm>
#include <map>

#include <fmt/core.h>

#include "core/error.h"
#include "core/text.h"

namespace normexp::data {

namespace fs = std::filesystem;

namespace {
bool is_jpeg_name(const fs::path& p) {
  const std::string ext = ascii_lower(p.extension().string());
  return ext == ".jpeg" || ext == ".jpg";
}
bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }
}  // namespace

ImageFiles scan_image_folder(const fs::path& dir, const std::vector<std::string>* classes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw RunError(fmt::format("{}: no such directory (expected {}/<class>/<image>.JPEG; "
                               "`normexp data prepare imagenet` makes it from the official "
                               "archives)",
                               dir.string(), dir.string()));
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !hidden(e.path())) folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  if (folders.empty())
    throw RunError(fmt::format("{}: no class folders in it (expected <class>/<image>.JPEG)",
                               dir.string()));
  ImageFiles out;
  std::map<std::string, int64_t> index;
  if (classes) {
    out.classes = *classes;
    for (size_t i = 0; i < classes->size(); ++i) index[(*classes)[i]] = static_cast<int64_t>(i);
  } else {
    for (const auto& f : folders) {
      index[f.filename().string()] = static_cast<int64_t>(out.classes.size());
      out.classes.push_back(f.filename().string());
    }
  }
  for (const auto& folder : folders) {
    const std::string name = folder.filename().string();
    auto it = index.find(name);
    if (it == index.end())
      throw RunError(fmt::format("{}: class folder {} is not one of the training split's {} "
                                 "classes",
                                 dir.string(), name, out.classes.size()));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(folder)) {
      if (hidden(e.path())) continue;
      if (!e.is_regular_file() || !is_jpeg_name(e.path()))
        throw RunError(fmt::format("{}: not a .JPEG/.jpg file in a class folder", e.path().string()));
      files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      out.paths.push_back(std::move(f));
      out.labels.push_back(it->second);
    }
  }
  return out;
}

ImageFiles spread_subset(const ImageFiles& files, int64_t count) {
  const int64_t n = files.size();
  if (count <= 0 || count >= n) return files;
  ImageFiles out;
  out.classes = files.classes;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = k * n / count;
    out.paths.push_back(files.paths[i]);
    out.labels.push_back(files.labels[i]);
  }
  return out;
}

}  // namespace normexp::data
