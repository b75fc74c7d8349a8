#include "data/imagenet_prepare.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/jpeg.h"

#if defined(NORMEXP_WITH_LIBARCHIVE) && defined(NORMEXP_WITH_MATIO)
#define NORMEXP_IMAGENET_PREPARE 1
#include <archive.h>
#include <archive_entry.h>
#include <matio.h>
#endif
#ifdef NORMEXP_WITH_LIBPNG
#include <png.h>
#endif

namespace normexp::data {

namespace fs = std::filesystem;

#ifdef NORMEXP_IMAGENET_PREPARE

bool built_with_matio() { return true; }

namespace {

// --- meta.mat ---------------------------------------------------------------------------

double mat_number(const matvar_t* v) {
  if (!v || !v->data) return -1;
  switch (v->class_type) {
    case MAT_C_DOUBLE: return *static_cast<const double*>(v->data);
    case MAT_C_SINGLE: return *static_cast<const float*>(v->data);
    case MAT_C_INT8: return *static_cast<const int8_t*>(v->data);
    case MAT_C_UINT8: return *static_cast<const uint8_t*>(v->data);
    case MAT_C_INT16: return *static_cast<const int16_t*>(v->data);
    case MAT_C_UINT16: return *static_cast<const uint16_t*>(v->data);
    case MAT_C_INT32: return *static_cast<const int32_t*>(v->data);
    case MAT_C_UINT32: return *static_cast<const uint32_t*>(v->data);
    case MAT_C_INT64: return static_cast<double>(*static_cast<const int64_t*>(v->data));
    case MAT_C_UINT64: return static_cast<double>(*static_cast<const uint64_t*>(v->data));
    default: return -1;
  }
}

// MATLAB writes char arrays as UTF-16 code units (ImageNet's are ASCII); matio may also hand
// back 8-bit units.
std::string mat_string(const matvar_t* v) {
  if (!v || v->class_type != MAT_C_CHAR || !v->data) return {};
  size_t n = 1;
  for (int d = 0; d < v->rank; ++d) n *= v->dims[d];
  std::string s;
  if (v->data_size == 2) {
    const auto* u = static_cast<const uint16_t*>(v->data);
    for (size_t i = 0; i < n; ++i) s.push_back(u[i] < 128 ? static_cast<char>(u[i]) : '?');
  } else {
    s.assign(static_cast<const char*>(v->data), n);
  }
  return s;
}

// --- archives ---------------------------------------------------------------------------

using ArchivePtr = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

ArchivePtr open_tar(const fs::path& path) {
  ArchivePtr a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 20) != ARCHIVE_OK)
    throw RunError(fmt::format("{}: cannot open as a tar archive: {}", path.string(),
                               archive_error_string(a.get())));
  return a;
}

// A member's name must be a plain file name (the official archives are flat): a `/`, `..`
// or absolute name could write outside the data directory, so the archive is refused.
std::string plain_name(const fs::path& archive, const char* raw) {
  std::string name = raw ? raw : "";
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos)
    throw RunError(fmt::format("refusing {}: entry '{}' is not a plain file name (the official "
                               "archive is flat; this one could write outside the data "
                               "directory)",
                               archive.string(), raw ? raw : ""));
  return name;
}

void require_regular(const fs::path& archive, struct archive_entry* e, const std::string& name) {
  if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
      archive_entry_symlink(e))
    throw RunError(fmt::format("refusing {}: entry '{}' is not a regular file (links could point "
                               "outside the data directory)",
                               archive.string(), name));
}

std::vector<unsigned char> read_member(struct archive* a, const std::string& where) {
  std::vector<unsigned char> bytes;
  unsigned char buf[1 << 16];
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0)
      throw RunError(fmt::format("{}: read error: {}", where, archive_error_string(a)));
    if (n == 0) break;
    bytes.insert(bytes.end(), buf, buf + n);
  }
  return bytes;
}

// The nested archive reads its bytes straight from the outer one: no copy of a class tar.
la_ssize_t read_from_outer(struct archive*, void* outer, const void** buf) {
  static thread_local unsigned char block[1 << 20];
  const la_ssize_t n = archive_read_data(static_cast<struct archive*>(outer), block, sizeof block);
  *buf = block;
  return n;
}

#ifdef NORMEXP_WITH_LIBPNG
bool png_to_jpeg(const std::vector<unsigned char>& bytes, std::vector<unsigned char>& jpeg) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) return false;
  img.format = PNG_FORMAT_RGB;
  RgbImage rgb;
  rgb.width = static_cast<int>(img.width);
  rgb.height = static_cast<int>(img.height);
  rgb.pixels.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, rgb.pixels.data(), 0, nullptr)) {
    png_image_free(&img);
    return false;
  }
  jpeg = encode_jpeg(rgb, 95);
  return true;
}
#else
bool png_to_jpeg(const std::vector<unsigned char>&, std::vector<unsigned char>&) { return false; }
#endif

bool is_png(const std::vector<unsigned char>& b) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return b.size() >= 8 && std::equal(sig, sig + 8, b.begin());
}

// Checks one image and returns the bytes to store: the JPEG as it is, or a PNG re-encoded.
// RunError naming the member for anything else.
std::vector<unsigned char> checked_image(std::vector<unsigned char> bytes, const std::string& where,
                                         int64_t& converted) {
  JpegInfo info;
  if (read_jpeg_header(bytes.data(), bytes.size(), info)) {
    if (has_jpeg_end_marker(bytes.data(), bytes.size())) return bytes;
    // No end marker: trailing data, or a truncated file. Only a full decode tells.
    RgbImage img;
    std::string error;
    if (decode_jpeg(bytes.data(), bytes.size(), 0, 0, img, error)) return bytes;
    throw RunError(fmt::format("{}: a truncated or corrupt JPEG ({}); the archive is damaged: "
                               "download it again",
                               where, error));
  }
  std::vector<unsigned char> jpeg;
  if (is_png(bytes) && png_to_jpeg(bytes, jpeg)) {
    ++converted;
    spdlog::info("{}: a PNG, re-encoded as JPEG (quality 95)", where);
    return jpeg;
  }
  throw RunError(fmt::format("{}: not a JPEG image ({} bytes{})", where, bytes.size(),
                             is_png(bytes) ? ", a PNG libpng cannot read" : ""));
}

// A failed write (a full disk) is not bad data: the partial copy stays to resume from.
struct WriteError : RunError {
  using RunError::RunError;
};

void write_bytes(const fs::path& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out)
    throw WriteError(fmt::format("{}: cannot write (disk full?); run the same command again to "
                               "resume",
                               path.string()));
}

struct Devkit {
  std::vector<ImageNetClass> classes;
  std::vector<int64_t> val_ids;  // ILSVRC2012_ID of validation image k (0-based)
};

std::vector<int64_t> parse_ground_truth(const std::string& text, const std::string& where,
                                        int64_t classes) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    int64_t id = 0;
    std::istringstream l(line);
    if (!(l >> id) || id < 1 || id > classes)
      throw RunError(fmt::format("{}:{}: '{}' is not a class id in 1..{}", where, line_no, line,
                                 classes));
    ids.push_back(id);
  }
  return ids;
}

constexpr const char* kMeta = "data/meta.mat";
constexpr const char* kTruth = "data/ILSVRC2012_validation_ground_truth.txt";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Devkit read_devkit(const fs::path& devkit, const fs::path& scratch, int64_t classes) {
  Devkit d;
  fs::path meta;
  std::string truth, truth_where;
  if (fs::is_directory(devkit)) {
    meta = devkit / kMeta;
    truth_where = (devkit / kTruth).string();
    truth = read_file(devkit / kTruth);  // RunError naming the file when it is missing
  } else {
    ArchivePtr a = open_tar(devkit);
    struct archive_entry* e = nullptr;
    bool have_meta = false, have_truth = false;
    while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
      const std::string name = archive_entry_pathname(e);
      if (ends_with(name, kMeta) && archive_entry_filetype(e) == AE_IFREG) {
        const auto bytes = read_member(a.get(), devkit.string() + ":" + name);
        meta = scratch / "meta.mat";
        write_bytes(meta, bytes);
        have_meta = true;
      } else if (ends_with(name, kTruth) && archive_entry_filetype(e) == AE_IFREG) {
        const auto bytes = read_member(a.get(), devkit.string() + ":" + name);
        truth.assign(bytes.begin(), bytes.end());
        truth_where = devkit.string() + ":" + name;
        have_truth = true;
      }
    }
    if (!have_meta || !have_truth)
      throw RunError(fmt::format("{}: no {} in it (is this ILSVRC2012_devkit_t12.tar.gz?)",
                                 devkit.string(), have_meta ? kTruth : kMeta));
  }
  d.classes = read_imagenet_meta(meta, classes);
  d.val_ids = parse_ground_truth(truth, truth_where, classes);
  return d;
}

}  // namespace

std::vector<ImageNetClass> read_imagenet_meta(const fs::path& path, int64_t classes) {
  std::unique_ptr<mat_t, decltype(&Mat_Close)> mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY),
                                                   &Mat_Close);
  if (!mat) throw RunError(fmt::format("{}: not a MAT-file matio can open", path.string()));
  std::unique_ptr<matvar_t, decltype(&Mat_VarFree)> synsets(Mat_VarRead(mat.get(), "synsets"),
                                                            &Mat_VarFree);
  if (!synsets || synsets->class_type != MAT_C_STRUCT)
    throw RunError(fmt::format("{}: no `synsets` struct array (the devkit's meta.mat has one)",
                               path.string()));
  size_t n = 1;
  for (int d = 0; d < synsets->rank; ++d) n *= synsets->dims[d];
  std::map<int64_t, ImageNetClass> by_id;
  for (size_t i = 0; i < n; ++i) {
    auto field = [&](const char* name) {
      matvar_t* v = Mat_VarGetStructFieldByName(synsets.get(), name, i);
      if (!v)
        throw RunError(fmt::format("{}: synsets has no field {}", path.string(), name));
      return v;
    };
    const auto id = static_cast<int64_t>(mat_number(field("ILSVRC2012_ID")));
    if (id < 1 || id > classes) continue;  // inner WordNet nodes have ids above the leaves
    ImageNetClass c{id, mat_string(field("WNID")), mat_string(field("words"))};
    if (c.wnid.empty() || c.wnid.find('/') != std::string::npos || c.wnid[0] == '.')
      throw RunError(fmt::format("{}: synset {} has an unusable WNID '{}'", path.string(), id,
                                 c.wnid));
    by_id[id] = std::move(c);
  }
  if (static_cast<int64_t>(by_id.size()) != classes)
    throw RunError(fmt::format("{}: {} synsets with ILSVRC2012_ID in 1..{}, expected {}",
                               path.string(), by_id.size(), classes, classes));
  std::vector<ImageNetClass> out;
  for (auto& [id, c] : by_id) out.push_back(std::move(c));
  return out;
}

ImageNetPrepareResult prepare_imagenet(const ImageNetPrepareOptions& opt) {
  for (const auto& [what, p] : {std::pair<const char*, fs::path>{"training archive", opt.train_tar},
                                {"validation archive", opt.val_tar},
                                {"devkit", opt.devkit}})
    if (!fs::exists(p)) throw RunError(fmt::format("{}: no such file (the {})", p.string(), what));
  ImageNetPrepareResult result;
  result.dir = opt.root / "imagenet";
  if (fs::exists(result.dir))
    throw RunError(fmt::format("{} already exists: remove it first to prepare ImageNet again",
                               result.dir.string()));
  const fs::path staging = opt.root / ".imagenet.partial";
  fs::create_directories(staging / "train");
  try {
    const Devkit devkit = read_devkit(opt.devkit, staging, opt.classes);
    std::set<std::string> wnids;
    for (const auto& c : devkit.classes) wnids.insert(c.wnid);

    // Training images: one class tar at a time, renamed into place when complete.
    {
      ArchivePtr outer = open_tar(opt.train_tar);
      struct archive_entry* e = nullptr;
      int r;
      while ((r = archive_read_next_header(outer.get(), &e)) == ARCHIVE_OK) {
        const std::string name = plain_name(opt.train_tar, archive_entry_pathname(e));
        require_regular(opt.train_tar, e, name);
        if (!ends_with(name, ".tar") || !wnids.count(name.substr(0, name.size() - 4)))
          throw RunError(fmt::format("{}: entry '{}' is not <wnid>.tar of one of the devkit's {} "
                                     "classes",
                                     opt.train_tar.string(), name, opt.classes));
        const std::string wnid = name.substr(0, name.size() - 4);
        const fs::path done = staging / "train" / wnid, part = staging / "train" / (wnid + ".part");
        if (fs::exists(done)) {  // finished by an interrupted earlier run
          ++result.resumed_classes;
          archive_read_data_skip(outer.get());
          continue;
        }
        fs::remove_all(part);
        fs::create_directories(part);
        ArchivePtr inner(archive_read_new(), &archive_read_free);
        archive_read_support_format_tar(inner.get());
        if (archive_read_open(inner.get(), outer.get(), nullptr, read_from_outer, nullptr) !=
            ARCHIVE_OK)
          throw RunError(fmt::format("{}:{}: not a tar archive", opt.train_tar.string(), name));
        const fs::path where = opt.train_tar.string() + ":" + name;
        struct archive_entry* ie = nullptr;
        int ir;
        while ((ir = archive_read_next_header(inner.get(), &ie)) == ARCHIVE_OK) {
          const std::string file = plain_name(where, archive_entry_pathname(ie));
          require_regular(where, ie, file);
          const std::string member = where.string() + ":" + file;
          write_bytes(part / file, checked_image(read_member(inner.get(), member), member,
                                                 result.converted));
        }
        if (ir != ARCHIVE_EOF)
          throw RunError(fmt::format("{}: damaged tar ({})", where.string(),
                                     archive_error_string(inner.get())));
        fs::rename(part, done);
      }
      if (r != ARCHIVE_EOF)
        throw RunError(fmt::format("{}: damaged tar ({})", opt.train_tar.string(),
                                   archive_error_string(outer.get())));
    }

    // Validation images: flat, labelled by the devkit's ground truth; one unit of work.
    const fs::path val_done = staging / "val", val_part = staging / "val.part";
    if (!fs::exists(val_done)) {
      fs::remove_all(val_part);
      for (const auto& c : devkit.classes) fs::create_directories(val_part / c.wnid);
      ArchivePtr a = open_tar(opt.val_tar);
      struct archive_entry* e = nullptr;
      int r;
      while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
        const std::string name = plain_name(opt.val_tar, archive_entry_pathname(e));
        require_regular(opt.val_tar, e, name);
        // ILSVRC2012_val_00000001.JPEG -> image 1 of the ground truth.
        int64_t k = 0;
        if (std::sscanf(name.c_str(), "ILSVRC2012_val_%8ld", &k) != 1 || k < 1 ||
            k > static_cast<int64_t>(devkit.val_ids.size()))
          throw RunError(fmt::format("{}: entry '{}' is not ILSVRC2012_val_<n>.JPEG with n in "
                                     "1..{} (the devkit's ground truth)",
                                     opt.val_tar.string(), name, devkit.val_ids.size()));
        const std::string member = opt.val_tar.string() + ":" + name;
        const auto& cls = devkit.classes[devkit.val_ids[k - 1] - 1];
        write_bytes(val_part / cls.wnid / name,
                    checked_image(read_member(a.get(), member), member, result.converted));
      }
      if (r != ARCHIVE_EOF)
        throw RunError(fmt::format("{}: damaged tar ({})", opt.val_tar.string(),
                                   archive_error_string(a.get())));
      fs::rename(val_part, val_done);
    }

    // Counts, then the copy goes into place.
    auto count = [](const fs::path& dir, int64_t& folders) {
      int64_t files = 0;
      folders = 0;
      for (const auto& c : fs::directory_iterator(dir)) {
        if (!c.is_directory()) continue;
        ++folders;
        for (const auto& f : fs::directory_iterator(c.path()))
          if (f.is_regular_file()) ++files;
      }
      return files;
    };
    int64_t train_classes = 0, val_classes = 0;
    result.train = count(staging / "train", train_classes);
    result.val = count(staging / "val", val_classes);
    result.classes = train_classes;
    if (result.train != opt.train_count || train_classes != opt.classes ||
        result.val != opt.val_count)
      throw RunError(fmt::format("the archives hold {} training images of {} classes and {} "
                                 "validation images; ILSVRC 2012 has {} of {} and {}: an "
                                 "incomplete or different archive",
                                 result.train, train_classes, result.val, opt.train_count,
                                 opt.classes, opt.val_count));
    std::string names;
    for (const auto& c : devkit.classes) names += fmt::format("{}\t{}\t{}\n", c.id, c.wnid, c.words);
    write_bytes(staging / "classes.tsv", std::vector<unsigned char>(names.begin(), names.end()));
    fs::remove(staging / "meta.mat");
    fs::rename(staging, result.dir);
  } catch (const WriteError&) {
    throw;  // the partial copy stays: the same command resumes
  } catch (const RunError&) {
    // Bad data: nothing half-done stays. (A signal or a crash never reaches this handler, so
    // an interrupted run leaves the partial copy to resume from.)
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  return result;
}

#else

bool built_with_matio() { return false; }

namespace {
[[noreturn]] void unavailable() {
  throw RunError("this normexp was built without libarchive or matio, which `data prepare "
                 "imagenet` needs: install Debian's libarchive-dev and libmatio-dev "
                 "(scripts/setup.sh does) and rebuild");
}
}  // namespace

std::vector<ImageNetClass> read_imagenet_meta(const fs::path&, int64_t) { unavailable(); }
ImageNetPrepareResult prepare_imagenet(const ImageNetPrepareOptions&) { unavailable(); }

#endif

}  // namespace normexp::data
