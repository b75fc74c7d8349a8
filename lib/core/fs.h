#pragma once
// File helpers. Every file normexp writes goes through write_file_atomic: content goes to a
// temporary name in the same directory, is flushed, and is renamed over the target, so a
// reader never sees a half-written file and a crash never truncates an existing one.

#include <filesystem>
#include <string>
#include <string_view>

namespace normexp {

// Throws RunError naming the path on failure. Creates parent directories.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Appends `content` (whole lines, for logs such as diagnostics.jsonl) and fsyncs. A crash can
// leave the last line cut short, so readers must skip a line that does not parse. Throws
// RunError naming the path on failure; creates the file.
void append_file(const std::filesystem::path& path, std::string_view content);

// Throws RunError naming the path when it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace normexp
