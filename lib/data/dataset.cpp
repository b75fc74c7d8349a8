#include "data/dataset.h"

#include <torch/torch.h>

#include "core/error.h"

namespace normexp::data {

void channel_stats(const at::Tensor& images, std::vector<double>& mean, std::vector<double>& std) {
  torch::NoGradGuard no_grad;
  const int64_t c = images.size(1);
  mean.assign(c, 0.0);
  std.assign(c, 1.0);
  for (int64_t i = 0; i < c; ++i) {
    auto ch = images.select(1, i).to(torch::kDouble).div_(255.0);
    mean[i] = ch.mean().item<double>();
    std[i] = std::max(ch.std().item<double>(), 1e-6);
  }
}

void require_in_memory(const ImageData& data, const std::string& what) {
  if (data.modality == Modality::Files || !data.train_x.defined())
    throw RunError(what + " needs the dataset in memory, and this one (" + data.description +
                   ") is streamed from JPEG files; it trains with task: classify");
}

}  // namespace normexp::data
