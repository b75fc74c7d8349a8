#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/png.h"
#include "core/utf8.h"
#include "core/version.h"

namespace fs = std::filesystem;
using namespace normexp;

namespace {

// Kept local: core tests must not depend on the config layer's helpers.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = fs::temp_directory_path() /
            ("normexp_core_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(Hash, Fnv1a64KnownVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(fnv1a64_hex(""), "cbf29ce484222325");
  EXPECT_EQ(fnv1a64_hex("a"), "af63dc4c8601ec8c");
}

TEST(Hash, HexIsSixteenDigitsEvenWithLeadingZeros) {
  // Any input works; the point is the fixed width and lower case.
  for (const char* s : {"", "a", "b", "hello world", "normexp"}) {
    const std::string h = fnv1a64_hex(s);
    EXPECT_EQ(h.size(), 16u) << s;
    EXPECT_TRUE(std::regex_match(h, std::regex("[0-9a-f]{16}"))) << h;
    EXPECT_EQ(std::stoull(h, nullptr, 16), fnv1a64(s));
  }
}

TEST(Hash, BytesAreUnsigned) {
  // A signed-char implementation would differ on bytes >= 0x80.
  std::string s = "\xff";
  std::uint64_t expected = (14695981039346656037ull ^ 0xffull) * 1099511628211ull;
  EXPECT_EQ(fnv1a64(s), expected);
}

TEST(Error, IssueStringLeavesOutEmptyParts) {
  EXPECT_EQ((ConfigIssue{"a.yaml:3", "optim.lr", "bad"}).str(), "a.yaml:3: optim.lr: bad");
  EXPECT_EQ((ConfigIssue{"", "optim.lr", "bad"}).str(), "optim.lr: bad");
  EXPECT_EQ((ConfigIssue{"a.yaml", "", "bad"}).str(), "a.yaml: bad");
}

TEST(Error, ConfigErrorJoinsAllIssues) {
  ConfigError e({{"a.yaml:1", "x", "one"}, {"a.yaml:2", "y", "two"}});
  EXPECT_EQ(e.issues().size(), 2u);
  EXPECT_STREQ(e.what(), "a.yaml:1: x: one\na.yaml:2: y: two");
  ConfigError single("--set a=b", "a", "bad");
  ASSERT_EQ(single.issues().size(), 1u);
  EXPECT_EQ(single.issues()[0].where, "--set a=b");
  EXPECT_STREQ(single.what(), "--set a=b: a: bad");
}

TEST(Fs, WriteAtomicCreatesParentsAndRoundTrips) {
  ScratchDir dir;
  const fs::path p = dir.path() / "a" / "b" / "out.txt";
  const std::string content("line 1\n\0binary\xff", 15);
  write_file_atomic(p, content);
  EXPECT_EQ(read_file(p), content);
}

TEST(Fs, WriteAtomicReplacesAndLeavesNoTempFile) {
  ScratchDir dir;
  const fs::path p = dir.path() / "config.yaml";
  write_file_atomic(p, "first version, rather long\n");
  write_file_atomic(p, "second\n");
  EXPECT_EQ(read_file(p), "second\n");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"config.yaml"});
}

TEST(Fs, WriteAtomicFailureNamesPathAndCleansUp) {
  ScratchDir dir;
  // The target is an existing directory, so the final rename fails after the temp file
  // was written; the temp file must not be left behind.
  const fs::path target = dir.path() / "taken";
  fs::create_directories(target / "child");
  try {
    write_file_atomic(target, "x");
    FAIL() << "expected RunError";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find(target.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"taken"});
}

TEST(Fs, WriteAtomicUnderAFileFails) {
  ScratchDir dir;
  std::ofstream(dir.path() / "plain") << "x";
  EXPECT_THROW(write_file_atomic(dir.path() / "plain" / "sub.txt", "x"), RunError);
}

TEST(Fs, ReadFileErrorsNameThePath) {
  ScratchDir dir;
  const fs::path missing = dir.path() / "missing.txt";
  try {
    read_file(missing);
    FAIL() << "expected RunError";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_file(dir.path()), RunError);
}

TEST(Fs, ReadFileEmpty) {
  ScratchDir dir;
  write_file_atomic(dir.path() / "empty", "");
  EXPECT_EQ(read_file(dir.path() / "empty"), "");
}

TEST(Version, LooksLikeAVersionAndCommit) {
  EXPECT_TRUE(std::regex_match(normexp_version(), std::regex(R"(\d+\.\d+\.\d+.*)")))
      << normexp_version();
  EXPECT_FALSE(git_commit().empty());
}

TEST(Utf8, AcceptsWellFormedTextAndNamesTheFirstBadByte) {
  using normexp::invalid_utf8_at;
  EXPECT_EQ(invalid_utf8_at(""), std::nullopt);
  EXPECT_EQ(invalid_utf8_at("plain ascii"), std::nullopt);
  EXPECT_EQ(invalid_utf8_at("caf\xc3\xa9 \xcf\x83 \xe6\xbc\xa2 \xf0\x9f\x99\x82"), std::nullopt);
  EXPECT_EQ(invalid_utf8_at("\xf4\x8f\xbf\xbf"), std::nullopt);  // U+10FFFF, the last one
  EXPECT_EQ(invalid_utf8_at("ab\x80"), 2u);                      // a lone continuation byte
  EXPECT_EQ(invalid_utf8_at("caf\xe9"), 3u);                     // Latin-1, not UTF-8
  EXPECT_EQ(invalid_utf8_at("\xc0\x80"), 0u);                    // overlong NUL
  EXPECT_EQ(invalid_utf8_at("x\xe0\x80\x80"), 1u);               // overlong 3-byte form
  EXPECT_EQ(invalid_utf8_at("\xed\xa0\x80"), 0u);                // a UTF-16 surrogate
  EXPECT_EQ(invalid_utf8_at("\xf4\x90\x80\x80"), 0u);            // above U+10FFFF
  EXPECT_EQ(invalid_utf8_at("ok\xe2\x82"), 2u);                  // cut short
  EXPECT_EQ(invalid_utf8_at("\xff"), 0u);
  // Each continuation byte is checked, not just the second.
  EXPECT_EQ(invalid_utf8_at("a\xe2\x82" "A"), 1u);       // 3-byte form, bad third byte
  EXPECT_EQ(invalid_utf8_at("\xf0\x9f\x99" "A"), 0u);     // 4-byte form, bad fourth byte
  EXPECT_EQ(invalid_utf8_at("\xf0\x8f\xbf\xbf"), 0u);     // overlong 4-byte form
  // Cut short by the end of the text, whatever lies in memory after it: a view into a longer
  // buffer whose next bytes would complete the sequence.
  const std::string_view whole("ok\xe2\x82\xac", 5);
  EXPECT_EQ(invalid_utf8_at(whole), std::nullopt);  // the euro sign
  EXPECT_EQ(invalid_utf8_at(whole.substr(0, 4)), 2u);
  EXPECT_EQ(invalid_utf8_at(std::string_view("\xf0\x9f\x99\x82", 3)), 0u);
}

// encode_png read back by a decoder that is not ours: Python's zlib and struct check every
// chunk's CRC-32, the IHDR fields and chunk order, inflate IDAT, undo any of PNG's five
// scanline filters and compare the pixels byte for byte (grey and RGB, odd sizes). Catches a
// wrong CRC, a bad zlib stream, swapped width/height, a wrong colour type and a row stride
// that is off. Skipped where python3 is missing.
TEST(Png, AnIndependentDecoderReadsBackThePixels) {
  if (std::system("python3 -c 'import zlib, struct' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 not found";
  ScratchDir dir;
  const auto script = dir.path() / "read_png.py";
  {
    std::ofstream(script) << R"PY(import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
pos, idat, ihdr, types = 8, b'', None, []
while pos < len(data):
    (n,) = struct.unpack('>I', data[pos:pos + 4])
    kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
    (crc,) = struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])
    assert crc == zlib.crc32(kind + body) & 0xffffffff, 'CRC of %r' % kind
    types.append(kind)
    if kind == b'IHDR':
        ihdr = struct.unpack('>IIBBBBB', body)
    if kind == b'IDAT':
        idat += body
    pos += 12 + n
assert types[0] == b'IHDR' and types[-1] == b'IEND', types
w, h, depth, ctype, comp, filt, interlace = ihdr
ch = {0: 1, 2: 3}[ctype]
assert (w, h, depth, ch, comp, filt, interlace) == (
    int(sys.argv[3]), int(sys.argv[4]), 8, int(sys.argv[5]), 0, 0, 0), ihdr
raw = zlib.decompress(idat)
stride = w * ch
assert len(raw) == h * (stride + 1), 'inflated size'
out, prev = bytearray(), bytearray(stride)
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - ch] if i >= ch else 0
        b = prev[i]
        c = prev[i - ch] if i >= ch else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else: assert f == 0, 'filter %d' % f
    out += line
    prev = line
assert bytes(out) == open(sys.argv[2], 'rb').read(), 'pixels differ'
)PY";
  }
  for (const auto& [w, h, channels] : {std::array<int, 3>{7, 5, 1}, {13, 4, 3}, {1, 1, 3}}) {
    std::vector<std::uint8_t> pixels(static_cast<size_t>(w) * h * channels);
    for (size_t i = 0; i < pixels.size(); ++i)
      pixels[i] = static_cast<std::uint8_t>((i * 37 + (i / 5) * 11) & 0xFF);
    const auto png = dir.path() / "p.png", expect = dir.path() / "p.raw";
    write_png(png, pixels, w, h, channels);
    std::ofstream(expect, std::ios::binary)
        .write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
    const std::string cmd = "python3 " + script.string() + " " + png.string() + " " +
                            expect.string() + " " + std::to_string(w) + " " + std::to_string(h) +
                            " " + std::to_string(channels);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  EXPECT_THROW(encode_png({1, 2}, 2, 3, 3), std::invalid_argument);
}
