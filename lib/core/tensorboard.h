#pragma once
// TensorBoard's event files, written without TensorFlow: TFRecord framing (length, masked
// CRC-32C of the length, data, masked CRC-32C of the data) around serialized `Event` protocol
// buffers. The few messages normexp writes (an Event with a wall time and a step, a Summary of
// scalar values, the HParams plugin's session start and end) are encoded field by field here:
// five messages of a dozen fields do not justify generated protobuf code and a protoc build
// step, and the wire format they use (varints, 64-bit doubles, 32-bit floats, length-delimited
// fields) is fixed by protobuf's encoding spec. CRC-32C comes from Boost.CRC.
//
// Readers: TensorBoard (and W&B's TensorBoard import) pick up any file whose name contains
// "tfevents"; tests load ours with TensorBoard's own reader.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace normexp::tensorboard {

// CRC-32C (Castagnoli) of `bytes`, and TFRecord's mask of it: ((crc >> 15) | (crc << 17)) +
// 0xa282ead8.
uint32_t crc32c(const std::string& bytes);
uint32_t masked_crc32c(const std::string& bytes);

// One TFRecord: uint64 length, masked CRC of the length bytes, the data, masked CRC of it.
std::string frame_record(const std::string& data);

// Serialized Events.
std::string file_version_event(double wall_time);  // "brain.Event:2", first in every file
std::string scalars_event(double wall_time, int64_t step,
                          const std::vector<std::pair<std::string, double>>& scalars);
// The HParams plugin's session start: the run's hyperparameters (numbers, strings, booleans;
// anything else as its JSON text) under `group_name` (runs with one name form one row group).
std::string hparams_start_event(double wall_time, const std::map<std::string, nlohmann::json>& hparams,
                                const std::string& group_name);
// Its session end: "success", "failure" or "running".
std::string hparams_end_event(double wall_time, const std::string& status);

// Writes `events` (serialized Events) framed as one file `dir/name`, atomically: the
// temporary file's name does not contain "tfevents", so a watching TensorBoard never reads
// it half-written.
void write_event_file(const std::filesystem::path& dir, const std::string& name,
                      const std::vector<std::string>& events);

}  // namespace normexp::tensorboard
