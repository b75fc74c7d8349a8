#pragma once
// Getting CIFAR onto disk: `normexp data prepare` checks an official archive's MD5, extracts it
// and checks the files; `normexp data fetch` downloads the archive first.
//
// Each needs an optional library: libarchive (extraction), OpenSSL (MD5), libcurl (download).
// A build without one still has everything else; the feature then throws a RunError saying
// which package to install.

#include <filesystem>
#include <optional>
#include <string>

#include "data/cifar.h"

namespace normexp::data {

// Whether this build has the optional libraries.
bool built_with_libarchive();
bool built_with_openssl();
bool built_with_curl();

// Lowercase hex MD5 of a file's contents. RunError when unreadable or built without OpenSSL.
std::string md5_file(const std::filesystem::path& path);

struct PrepareOptions {
  CifarVariant variant = CifarVariant::Cifar10;
  std::filesystem::path archive;      // the .tar.gz
  std::filesystem::path root = "data";  // the layout's directory is created inside it
  std::string expected_md5;  // empty: the official archive's sum
  // Files and record counts to check after extraction; unset: the official layout (tests
  // pass a layout with tiny counts).
  std::optional<CifarLayout> layout;
};

// Checks the archive's MD5 (refusing a mismatch before anything is written), extracts it into
// a temporary directory inside `root` (refusing absolute paths, `..` and links), checks every
// file of the layout, then renames the layout's directory into place (replacing an existing
// copy). On any failure nothing is left behind. Returns the directory now holding the data.
std::filesystem::path prepare_cifar(const PrepareOptions& opt);

struct FetchOptions {
  CifarVariant variant = CifarVariant::Cifar10;
  std::filesystem::path root = "data";
  std::string url;  // empty: the official archive (a mirror must serve the identical file)
  std::string expected_md5;  // empty: the official sum
  std::optional<CifarLayout> layout;  // as in PrepareOptions
  long connect_timeout_s = 20;
};

// Downloads the archive into a temporary file inside `root`, runs prepare_cifar on it and
// removes it. Without network: a RunError naming the URL and curl's error and suggesting
// `normexp data prepare --from`.
std::filesystem::path fetch_cifar(const FetchOptions& opt);

}  // namespace normexp::data
