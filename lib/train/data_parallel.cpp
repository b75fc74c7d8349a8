#include "train/data_parallel.h"

#include <torch/torch.h>

#include <chrono>
#include <map>

#include "core/error.h"
#include "nn/bcn.h"
#include "nn/norm_scheme.h"
#include "nn/sync_batch_norm.h"

namespace normexp::train {

DataParallel::DataParallel(std::shared_ptr<backend::ProcessGroup> group, c10::Device device,
                           int64_t bucket_bytes)
    : group_(std::move(group)), device_(device), bucket_bytes_(bucket_bytes) {}

at::Tensor DataParallel::on_group_device(const at::Tensor& t) const {
  return group_->backend() == "nccl" ? t.to(device_) : t.cpu();
}

void DataParallel::broadcast_model(torch::nn::Module& model) const {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> all;
  for (const auto& p : model.parameters()) all.push_back(p);
  for (const auto& b : model.buffers()) all.push_back(b);
  for (auto& t : all) {
    std::vector<at::Tensor> one{on_group_device(t.contiguous())};
    group_->broadcast(one);
    t.copy_(one[0]);
  }
}

void DataParallel::broadcast(at::Tensor& tensor) const {
  std::vector<at::Tensor> one{on_group_device(tensor.contiguous())};
  group_->broadcast(one);
  tensor = one[0].to(tensor.device());
}

void DataParallel::sum_gradients(const std::vector<at::Tensor>& params) const {
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  // Buckets in parameter order, one dtype each; the same on every rank (same model).
  std::map<c10::ScalarType, std::vector<at::Tensor>> pending;
  std::map<c10::ScalarType, int64_t> bytes;
  auto flush = [&](c10::ScalarType type) {
    auto& grads = pending[type];
    if (grads.empty()) return;
    std::vector<at::Tensor> flat;
    for (const auto& g : grads) flat.push_back(g.reshape({-1}));
    std::vector<at::Tensor> bucket{on_group_device(torch::cat(flat))};
    group_->allreduce_sum(bucket);
    const auto summed = bucket[0].to(grads.front().device());
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(summed.slice(0, offset, offset + g.numel()).view_as(g));
      offset += g.numel();
    }
    grads.clear();
    bytes[type] = 0;
  };
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    const auto type = g.scalar_type();
    pending[type].push_back(g);
    bytes[type] += g.numel() * static_cast<int64_t>(g.element_size());
    if (bytes[type] >= bucket_bytes_) flush(type);
  }
  for (auto& [type, grads] : pending) flush(type);
  sync_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void DataParallel::sum(std::vector<at::Tensor>& tensors) const {
  std::vector<at::Tensor> moved;
  for (const auto& t : tensors) moved.push_back(on_group_device(t.contiguous()));
  group_->allreduce_sum(moved);
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(moved[i]);
}

std::vector<bool> DataParallel::any(const std::vector<bool>& flags) const {
  const std::vector<int64_t> values(flags.begin(), flags.end());
  std::vector<at::Tensor> one{on_group_device(torch::tensor(values))};
  group_->allreduce_sum(one);
  const auto back = one[0].cpu();
  std::vector<bool> out;
  for (size_t i = 0; i < flags.size(); ++i) out.push_back(back[i].item<int64_t>() > 0);
  return out;
}

at::Tensor DataParallel::gather(const at::Tensor& tensor) const {
  auto parts = group_->allgather(on_group_device(tensor.contiguous()));
  for (auto& p : parts) p = p.cpu();
  return torch::stack(parts);
}

namespace {

class SyncBnScheme : public nn::ForwardingScheme {
 public:
  SyncBnScheme(std::unique_ptr<nn::NormScheme> inner,
               std::shared_ptr<backend::ProcessGroup> group)
      : ForwardingScheme(std::move(inner)), group_(std::move(group)) {}
  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override {
    return synced(inner().norm(channels, where));
  }
  torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) override {
    return synced(inner().residual_norm(channels, where));
  }
  torch::nn::AnyModule token_norm(int64_t dim, const std::string& where) override {
    return synced(inner().token_norm(dim, where));
  }

 private:
  torch::nn::AnyModule synced(torch::nn::AnyModule m) const {
    if (m.is_empty()) return m;
    // BCN's batch statistics (Markou's magnitude LayerNorm over the whole batch) are a
    // batch statistic too, but they live inside BCN's fused autograd function, which has no
    // collective; left per rank, a user who asked for global statistics would silently get
    // each rank's. Refused instead: tokens statistics are per sample, the same at any world size.
    if (m.type_info() == typeid(nn::BcnImpl) &&
        std::dynamic_pointer_cast<nn::BcnImpl>(m.ptr())->options().stats == nn::BcnStats::Batch)
      throw ConfigError("", "train.sync_bn",
                        "synchronizes BatchNorm only; BCN with norm.stats: batch keeps each "
                        "rank's magnitude statistics. Use norm.stats: tokens (per sample, the "
                        "same on any number of ranks) or train.sync_bn: false (per-rank "
                        "statistics, as BN without it)");
    if (m.type_info() != typeid(torch::nn::BatchNorm2dImpl)) return m;
    const auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(m.ptr());
    return torch::nn::AnyModule(nn::SyncBatchNorm2d(bn->options, group_));
  }
  std::shared_ptr<backend::ProcessGroup> group_;
};

}  // namespace

SchemeDecorator sync_batch_norm(std::shared_ptr<backend::ProcessGroup> group) {
  return [group](std::unique_ptr<nn::NormScheme> inner) -> std::unique_ptr<nn::NormScheme> {
    return std::make_unique<SyncBnScheme>(std::move(inner), group);
  };
}

}  // namespace normexp::train
