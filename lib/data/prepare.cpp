#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/text.h"
#include "core/version.h"

#ifdef NORMEXP_WITH_LIBARCHIVE
#include <archive.h>
#include <archive_entry.h>
#endif
#ifdef NORMEXP_WITH_OPENSSL
#include <openssl/evp.h>
#endif
#ifdef NORMEXP_WITH_CURL
#include <curl/curl.h>
#endif

namespace normexp::data {

namespace fs = std::filesystem;

namespace {

// The build machine decides which optional libraries exist; a user who hits a compiled-out
// feature needs to know exactly what to install.
[[noreturn]] void built_without(const char* library, const char* package, const char* needed_for) {
  throw RunError(fmt::format(
      "this normexp was built without {} (needed {}); install {} and rebuild "
      "(re-run cmake -S . -B <build dir>, then build)",
      library, needed_for, package));
}

void require_prepare_libraries() {
  if (!built_with_openssl()) built_without("OpenSSL", "libssl-dev", "to check the archive's MD5");
  if (!built_with_libarchive())
    built_without("libarchive", "libarchive-dev", "to extract the archive");
}

std::string normalized_md5(const std::string& hex) {
  const std::string out = ascii_lower(hex);
  const bool ok = out.size() == 32 && std::all_of(out.begin(), out.end(), [](unsigned char c) {
                    return std::isxdigit(c) != 0;
                  });
  if (!ok) throw RunError("expected MD5 '" + hex + "' is not 32 hexadecimal digits");
  return out;
}

// Removes a temporary file or directory on every exit path unless released.
class Cleanup {
 public:
  explicit Cleanup(fs::path p) : path_(std::move(p)) {}
  ~Cleanup() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;

 private:
  fs::path path_;
};

#ifdef NORMEXP_WITH_LIBARCHIVE
fs::path make_temp_dir(const fs::path& parent, const std::string& prefix) {
  std::string templ = (parent / (prefix + "XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw RunError("cannot create a temporary directory in '" + parent.string() +
                   "': " + std::error_code(errno, std::generic_category()).message());
  return fs::path(buf.data());
}

// An archive entry's name as a path inside the extraction directory. Absolute names and `..`
// could write anywhere on disk, so the whole archive is refused rather than the entry skipped.
fs::path safe_entry_path(const fs::path& archive, const std::string& name) {
  auto refuse = [&](const char* why) {
    throw RunError(fmt::format("refusing archive '{}': entry '{}' {} (it would be written outside "
                               "the data directory)",
                               archive.string(), name, why));
  };
  if (!name.empty() && name[0] == '/') refuse("has an absolute path");
  fs::path out;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part == "..") refuse("contains '..'");
    if (!part.empty() && part != ".") out /= part;
    start = end + 1;
  }
  return out;
}

// Regular files and directories only: the official archives hold nothing else, and links
// could point outside the data directory.
void extract_tar(const fs::path& archive, const fs::path& into) {
  std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(),
                                                                    &archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  auto fail = [&](const std::string& what) {
    const char* err = archive_error_string(a.get());
    throw RunError(fmt::format("cannot extract '{}': {}{}", archive.string(), what,
                               err ? std::string(": ") + err : std::string()));
  };
  if (archive_read_open_filename(a.get(), archive.c_str(), 1 << 16) != ARCHIVE_OK)
    fail("not a readable .tar.gz");

  std::vector<char> buf(1 << 16);
  for (;;) {
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) fail("bad archive header");
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name ? raw_name : "";
    const fs::path rel = safe_entry_path(archive, name);
    if (archive_entry_hardlink(entry) != nullptr || archive_entry_symlink(entry) != nullptr)
      throw RunError(fmt::format("refusing archive '{}': entry '{}' is a link",
                                 archive.string(), name));
    const auto type = archive_entry_filetype(entry);
    if (rel.empty()) continue;  // "./"
    const fs::path target = into / rel;
    std::error_code ec;
    if (type == AE_IFDIR) {
      fs::create_directories(target, ec);
      if (ec) throw RunError("cannot create '" + target.string() + "': " + ec.message());
      continue;
    }
    if (type != AE_IFREG)
      throw RunError(fmt::format("refusing archive '{}': entry '{}' is not a regular file or "
                                 "directory",
                                 archive.string(), name));
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw RunError("cannot create '" + target.parent_path().string() + "': " + ec.message());
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    if (!out) throw RunError("cannot write '" + target.string() + "'");
    for (;;) {
      const la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) fail("cannot read entry '" + name + "'");
      if (n == 0) break;
      out.write(buf.data(), n);
    }
    out.close();
    if (!out) throw RunError("cannot write '" + target.string() + "' (disk full?)");
  }
}
#endif

}  // namespace

bool built_with_libarchive() {
#ifdef NORMEXP_WITH_LIBARCHIVE
  return true;
#else
  return false;
#endif
}

bool built_with_openssl() {
#ifdef NORMEXP_WITH_OPENSSL
  return true;
#else
  return false;
#endif
}

bool built_with_curl() {
#ifdef NORMEXP_WITH_CURL
  return true;
#else
  return false;
#endif
}

std::string md5_file(const fs::path& path) {
#ifdef NORMEXP_WITH_OPENSSL
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunError("cannot read '" + path.string() + "'");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1)
    throw RunError("OpenSSL cannot compute MD5 here (is MD5 disabled by policy?)");
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = in.gcount();
    if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  if (in.bad()) throw RunError("cannot read '" + path.string() + "'");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
#else
  (void)path;
  built_without("OpenSSL", "libssl-dev", "to compute MD5 sums");
#endif
}

fs::path prepare_cifar(const PrepareOptions& opt) {
  require_prepare_libraries();
  const CifarLayout layout = opt.layout ? *opt.layout : official_cifar_layout(opt.variant);
  const auto& official = official_cifar_archive(opt.variant);
  const std::string name = cifar_name(opt.variant);
  std::error_code ec;
  if (!fs::is_regular_file(opt.archive, ec))
    throw RunError(fmt::format("archive '{}' not found (download {} from {})",
                               opt.archive.string(), official.file_name, kCifarPage));

  // Checked before anything is written: a truncated download or the python version of the
  // archive must not replace good data.
  const std::string expected =
      normalized_md5(opt.expected_md5.empty() ? official.md5 : opt.expected_md5);
  spdlog::info("checking MD5 of {}", opt.archive.string());
  const std::string actual = md5_file(opt.archive);
  if (actual != expected)
    throw RunError(fmt::format(
        "'{}' has MD5 {}, expected {}{}: the download is incomplete or corrupt, or it is not "
        "the binary version of {} ({})",
        opt.archive.string(), actual, expected,
        opt.expected_md5.empty() ? " (official " + official.file_name + ")" : std::string(),
        name, official.file_name));

#ifdef NORMEXP_WITH_LIBARCHIVE
  fs::create_directories(opt.root, ec);
  if (ec) throw RunError("cannot create '" + opt.root.string() + "': " + ec.message());
  // Extracting next to the destination keeps the final rename on one filesystem (atomic).
  const fs::path tmp = make_temp_dir(opt.root, ".normexp-prepare-");
  Cleanup cleanup(tmp);
  spdlog::info("extracting {} into {}", opt.archive.string(), opt.root.string());
  extract_tar(opt.archive, tmp);

  const fs::path extracted = tmp / layout.dir;
  if (!fs::is_directory(extracted, ec))
    throw RunError(fmt::format("'{}' has no {}/ directory: is it {} (the binary version)?",
                               opt.archive.string(), layout.dir, official.file_name));
  try {
    verify_cifar_files(extracted, opt.variant, layout);
  } catch (const RunError& e) {
    throw RunError(fmt::format("'{}' does not hold a complete {} binary dataset: {}",
                               opt.archive.string(), name, e.what()));
  }

  const fs::path dest = opt.root / layout.dir;
  const fs::path previous = tmp / ".previous";
  const bool replacing = fs::exists(fs::symlink_status(dest, ec));
  if (replacing) {
    fs::rename(dest, previous, ec);
    if (ec) throw RunError("cannot move the existing '" + dest.string() + "' aside: " + ec.message());
  }
  fs::rename(extracted, dest, ec);
  if (ec) {
    const std::string why = ec.message();
    if (replacing) fs::rename(previous, dest, ec);  // put the old copy back
    throw RunError("cannot move the extracted data to '" + dest.string() + "': " + why);
  }
  spdlog::info("{} ready in {} ({} train / {} test images){}", name, dest.string(),
               layout.train_records(), layout.test_records(),
               replacing ? ", replacing the previous copy" : "");
  return dest;
#else
  built_without("libarchive", "libarchive-dev", "to extract the archive");
#endif
}

#ifdef NORMEXP_WITH_CURL
namespace {

struct Download {
  std::FILE* file = nullptr;
  curl_off_t last_logged = -1;  // tenth of the total last reported
};

size_t write_to_file(char* data, size_t size, size_t count, void* user) {
  auto* d = static_cast<Download*>(user);
  return std::fwrite(data, 1, size * count, d->file);
}

int log_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* d = static_cast<Download*>(user);
  if (total <= 0) return 0;
  const curl_off_t tenth = now * 10 / total;
  if (tenth != d->last_logged) {
    d->last_logged = tenth;
    spdlog::info("downloaded {:.0f} of {:.0f} MB", now / 1e6, total / 1e6);
  }
  return 0;
}

}  // namespace
#endif

fs::path fetch_cifar(const FetchOptions& opt) {
  // Every library is checked before a long download whose result could not be used.
  if (!built_with_curl()) built_without("libcurl", "libcurl4-openssl-dev", "to download");
  require_prepare_libraries();
#ifdef NORMEXP_WITH_CURL
  const auto& official = official_cifar_archive(opt.variant);
  const std::string url = opt.url.empty() ? official.url : opt.url;
  const std::string name = cifar_name(opt.variant);
  std::error_code ec;
  fs::create_directories(opt.root, ec);
  if (ec) throw RunError("cannot create '" + opt.root.string() + "': " + ec.message());
  const fs::path part =
      opt.root / fmt::format(".normexp-fetch-{}-{}", ::getpid(), official.file_name);
  Cleanup cleanup(part);

  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) throw RunError("cannot initialize libcurl");

  Download d;
  d.file = std::fopen(part.c_str(), "wb");
  if (!d.file) throw RunError("cannot write '" + part.string() + "'");
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string agent = "normexp/" + normexp_version();
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &write_to_file);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, &log_progress);
  curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &d);
  curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);  // an HTTP 404 page is not the archive
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, opt.connect_timeout_s);
  // A stalled transfer (under 1 kB/s for a minute) fails instead of hanging forever.
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, agent.c_str());

  spdlog::info("downloading {}", url);
  const CURLcode res = curl_easy_perform(curl.get());
  const bool closed = std::fclose(d.file) == 0;
  if (res != CURLE_OK) {
    const std::string why = errbuf[0] ? errbuf : curl_easy_strerror(res);
    throw RunError(fmt::format(
        "cannot download {}: {} (curl error {}).\nWithout network access to it, download {} "
        "(the binary version) from {} elsewhere, copy it here and run\n"
        "    normexp data prepare {} --from {} --root {}",
        url, why, static_cast<int>(res), official.file_name, kCifarPage, name,
        official.file_name, opt.root.string()));
  }
  if (!closed) throw RunError("cannot write '" + part.string() + "' (disk full?)");

  PrepareOptions p;
  p.variant = opt.variant;
  p.archive = part;
  p.root = opt.root;
  p.expected_md5 = opt.expected_md5;
  p.layout = opt.layout;
  try {
    return prepare_cifar(p);
  } catch (const RunError& e) {
    throw RunError(fmt::format("downloaded {}, but: {}", url, e.what()));
  }
#else
  (void)opt;
  return {};
#endif
}

}  // namespace normexp::data
