#include "core/tensorboard.h"

#include <unistd.h>

#include <cstring>
#include <fstream>

#include <boost/crc.hpp>

#include "core/error.h"

namespace normexp::tensorboard {

uint32_t crc32c(const std::string& bytes) {
  // Castagnoli polynomial, reflected, initial and final XOR all ones (RFC 3720).
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

namespace {

// Protocol buffer wire format (little-endian fixed widths, base-128 varints).
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_key(std::string& out, int field, int wire_type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | wire_type);
}
void put_double(std::string& out, int field, double v) {
  put_key(out, field, 1);
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_le(out, bits, 8);
}
void put_float(std::string& out, int field, float v) {
  put_key(out, field, 5);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_le(out, bits, 4);
}
void put_int(std::string& out, int field, int64_t v) {
  put_key(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string event(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) put_int(e, 2, step);
  return e;
}

// google.protobuf.Value { double number_value = 2; string string_value = 3; bool bool_value = 4; }
std::string struct_value(const nlohmann::json& v) {
  std::string out;
  if (v.is_boolean()) {
    put_int(out, 4, v.get<bool>() ? 1 : 0);
  } else if (v.is_number()) {
    put_double(out, 2, v.get<double>());
  } else if (v.is_string()) {
    put_bytes(out, 3, v.get<std::string>());
  } else {
    put_bytes(out, 3, v.dump());
  }
  return out;
}

// Summary { repeated Value value = 1; } with one Value { string tag = 1; SummaryMetadata
// metadata = 9; } whose metadata is the hparams plugin's: PluginData { plugin_name = 1;
// content = 2; }.
std::string hparams_summary(const std::string& tag, const std::string& plugin_content) {
  std::string plugin_data;
  put_bytes(plugin_data, 1, "hparams");
  put_bytes(plugin_data, 2, plugin_content);
  std::string metadata;
  put_bytes(metadata, 1, plugin_data);
  std::string value;
  put_bytes(value, 1, tag);
  put_bytes(value, 9, metadata);
  std::string summary;
  put_bytes(summary, 1, value);
  return summary;
}

}  // namespace

std::string frame_record(const std::string& data) {
  std::string len;
  put_le(len, data.size(), 8);
  std::string out = len;
  put_le(out, masked_crc32c(len), 4);
  out += data;
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::string file_version_event(double wall_time) {
  std::string e = event(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string scalars_event(double wall_time, int64_t step,
                          const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, v] : scalars) {
    std::string value;  // Summary.Value { string tag = 1; float simple_value = 2; }
    put_bytes(value, 1, tag);
    put_float(value, 2, static_cast<float>(v));
    put_bytes(summary, 1, value);
  }
  std::string e = event(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

// HParamsPluginData { int32 version = 1; SessionStartInfo session_start_info = 3;
//   SessionEndInfo session_end_info = 4; }
// SessionStartInfo { map<string, google.protobuf.Value> hparams = 1; string group_name = 4;
//   double start_time_secs = 5; }   SessionEndInfo { Status status = 1; double end_time_secs = 2; }
std::string hparams_start_event(double wall_time, const std::map<std::string, nlohmann::json>& hparams,
                                const std::string& group_name) {
  std::string start;
  for (const auto& [key, v] : hparams) {
    std::string entry;  // map entries: { key = 1; value = 2; }
    put_bytes(entry, 1, key);
    put_bytes(entry, 2, struct_value(v));
    put_bytes(start, 1, entry);
  }
  put_bytes(start, 4, group_name);
  put_double(start, 5, wall_time);
  std::string plugin;
  put_bytes(plugin, 3, start);  // version 0 is the default: not written
  std::string e = event(wall_time, 0);
  put_bytes(e, 5, hparams_summary("_hparams_/session_start_info", plugin));
  return e;
}

std::string hparams_end_event(double wall_time, const std::string& status) {
  const int code = status == "success" ? 1 : status == "failure" ? 2 : status == "running" ? 3 : 0;
  std::string end;
  put_int(end, 1, code);
  put_double(end, 2, wall_time);
  std::string plugin;
  put_bytes(plugin, 4, end);
  std::string e = event(wall_time, 0);
  put_bytes(e, 5, hparams_summary("_hparams_/session_end_info", plugin));
  return e;
}

void write_event_file(const std::filesystem::path& dir, const std::string& name,
                      const std::vector<std::string>& events) {
  std::string bytes;
  for (const auto& e : events) bytes += frame_record(e);
  const auto tmp = dir / (".tensorboard.tmp." + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw RunError("cannot write " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, dir / name, ec);
  if (ec) throw RunError("cannot rename " + tmp.string() + " to " + (dir / name).string() + ": " + ec.message());
}

}  // namespace normexp::tensorboard
