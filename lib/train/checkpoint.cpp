#include "train/checkpoint.h"

#include <torch/torch.h>

#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/cuda_backend.h"
#include "backend/torch_compat.h"
#include "core/error.h"
#include "core/fs.h"
#include "nn/params.h"

namespace normexp::train {

namespace {
constexpr int64_t kFormat = 2;

// Module names without decorator segments (".watched"), so a checkpoint does not depend on
// whether a run was monitored.
Checkpoint::Entries named_tensors(const torch::nn::Module& module) {
  Checkpoint::Entries out;
  for (const auto& p : module.named_parameters()) out[nn::canonical_name(p.key())] = p.value();
  for (const auto& b : module.named_buffers()) out[nn::canonical_name(b.key())] = b.value();
  return out;
}

c10::Dict<std::string, at::Tensor> to_dict(const Checkpoint::Entries& entries) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, v] : entries) d.insert(k, v.detach().cpu());
  return d;
}

Checkpoint::Entries from_dict(const c10::IValue& value) {
  Checkpoint::Entries out;
  for (const auto& e : value.toGenericDict()) out[e.key().toStringRef()] = e.value().toTensor();
  return out;
}

at::Tensor bytes_of(const std::string& text) {
  return torch::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())},
                          torch::kUInt8)
      .clone();
}

std::string text_of(const at::Tensor& bytes) {
  const auto b = bytes.contiguous().cpu();
  return std::string(static_cast<const char*>(b.data_ptr()), b.numel());
}

// The first format: everything a flat tensor keyed by position (see checkpoint.h).
void read_legacy(torch::serialize::InputArchive& ar, Checkpoint& c, std::vector<at::Tensor>& model,
                 const std::string& source) {
  auto read = [&](const std::string& key) {
    torch::Tensor t;
    if (!ar.try_read(key, t, /*is_buffer=*/true))
      throw RunError("checkpoint " + source + " lacks '" + key + "'");
    return t;
  };
  // A fresh tensor for every read: try_read into a defined tensor overwrites it in place.
  for (int64_t i = 0;; ++i) {
    torch::Tensor t;
    if (!ar.try_read("model_" + std::to_string(i), t, /*is_buffer=*/true)) break;
    model.push_back(t);
  }
  const auto n_optim = read("optim_count").item<int64_t>();
  for (int64_t i = 0; i < n_optim; ++i) {
    const auto key = "optim_" + std::to_string(i);
    auto name = read(key + "_name");
    c.optimizer[text_of(name)] = read(key);
  }
  auto meta = read("meta");  // int64: step, epoch, next_batch, seen
  const char* names[] = {"step", "epoch", "next_batch", "seen"};
  for (int i = 0; i < 4; ++i) c.progress[names[i]] = meta[i].clone();
  for (const char* key : {"train_time", "loss_sum", "correct", "rng_cpu"}) c.progress[key] = read(key);
  for (const char* key : {"order", "rng_cuda"}) {
    torch::Tensor t;
    if (ar.try_read(key, t, /*is_buffer=*/true)) c.progress[key] = t;
  }
}
}  // namespace

void Checkpoint::set_model(const torch::nn::Module& module) {
  model.clear();
  for (const auto& [k, v] : named_tensors(module)) model[k] = v.detach().cpu();
}

void Checkpoint::restore_model(torch::nn::Module& module, const std::string& source) const {
  torch::NoGradGuard no_grad;
  if (!legacy_model_.empty()) {
    std::vector<at::Tensor> targets;
    for (const auto& p : module.named_parameters()) targets.push_back(p.value());
    for (const auto& b : module.named_buffers()) targets.push_back(b.value());
    if (targets.size() != legacy_model_.size())
      throw RunError(fmt::format("checkpoint {} (first format) holds {} model tensors, the model "
                                 "has {}: it was written by another model",
                                 source, legacy_model_.size(), targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) {
      if (targets[i].sizes() != legacy_model_[i].sizes())
        throw RunError(fmt::format("checkpoint {} (first format) does not match the model: "
                                   "tensor {} has shape [{}], the model's is [{}]",
                                   source, i, fmt::join(legacy_model_[i].sizes(), ", "),
                                   fmt::join(targets[i].sizes(), ", ")));
      targets[i].copy_(legacy_model_[i]);
    }
    return;
  }
  const auto targets = named_tensors(module);
  for (const auto& [name, target] : targets) {
    auto it = model.find(name);
    if (it == model.end())
      throw RunError("checkpoint " + source + " has no '" + name +
                     "': it was written by another model or norm scheme");
    if (it->second.sizes() != target.sizes())
      throw RunError(fmt::format("checkpoint {}: '{}' has shape [{}], the model's is [{}]", source,
                                 name, fmt::join(it->second.sizes(), ", "),
                                 fmt::join(target.sizes(), ", ")));
  }
  for (const auto& [name, saved] : model)
    if (!targets.count(name))
      throw RunError("checkpoint " + source + " has '" + name +
                     "', which the model lacks: it was written by another model or norm scheme");
  for (const auto& [name, target] : targets) target.copy_(model.at(name));
}

const at::Tensor& Checkpoint::progress_at(const std::string& key, const std::string& source) const {
  auto it = progress.find(key);
  if (it == progress.end()) throw RunError("checkpoint " + source + " lacks '" + key + "'");
  return it->second;
}

void Checkpoint::set_optimizer(const optim::Optimizer& opt) {
  optimizer.clear();
  for (const auto& [name, tensor] : opt.state()) optimizer[name] = tensor.detach().cpu();
}

void Checkpoint::set_rng_states(const c10::Device& device) {
  progress["rng_cpu"] = compat::cpu_rng_state();
  if (device.is_cuda()) progress["rng_cuda"] = cuda::rng_state();
}

void Checkpoint::restore_rng_states(const c10::Device& device, const std::string& source) const {
  compat::set_cpu_rng_state(progress_at("rng_cpu", source));
  // A checkpoint written on the CPU has no CUDA state: the CUDA generator then stays as seeded.
  if (device.is_cuda() && progress.count("rng_cuda")) cuda::set_rng_state(progress.at("rng_cuda"));
}

void Checkpoint::set_text(const std::string& key, const std::string& text) {
  progress[key] = bytes_of(text);
}

std::string Checkpoint::text_at(const std::string& key, const std::string& source) const {
  return text_of(progress_at(key, source));
}

void Checkpoint::save(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(kFormat));
  ar.write("model", c10::IValue(to_dict(model)));
  ar.write("optimizer", c10::IValue(to_dict(optimizer)));
  ar.write("progress", c10::IValue(to_dict(progress)));
  std::ostringstream out;
  ar.save_to(out);
  write_file_atomic(path, out.str());
}

Checkpoint Checkpoint::load(const std::filesystem::path& path) {
  const std::string source = path.string();
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(source);
  } catch (const c10::Error& e) {
    throw RunError("cannot read checkpoint " + source + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw RunError("cannot read checkpoint " + source + ": " + e.what());
  }
  Checkpoint c;
  c10::IValue format;
  if (!ar.try_read("format", format)) {
    read_legacy(ar, c, c.legacy_model_, source);
    return c;
  }
  if (!format.isInt() || format.toInt() != kFormat)
    throw RunError(fmt::format("checkpoint {} has format {}; this normexp reads format {}",
                               source, format.isInt() ? format.toInt() : -1, kFormat));
  for (auto [key, entries] : {std::pair<const char*, Entries*>{"model", &c.model},
                              {"optimizer", &c.optimizer},
                              {"progress", &c.progress}}) {
    c10::IValue value;
    if (!ar.try_read(key, value)) throw RunError("checkpoint " + source + " lacks '" + key + "'");
    *entries = from_dict(value);
  }
  return c;
}

}  // namespace normexp::train
