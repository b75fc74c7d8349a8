#include "nn/scale_channels.h"

#include <torch/torch.h>

#include <vector>

#ifdef NORMEXP_WITH_CUDA
#include "nn/scale_cuda.h"
#endif

namespace normexp::nn {

torch::Tensor scale_channels(const torch::Tensor& x, const torch::Tensor& s) {
  TORCH_CHECK(x.dim() >= 2, "scale_channels: x needs a channel axis, got ", x.sizes());
  TORCH_CHECK((s.dim() == 1 && s.size(0) == x.size(1)) ||
                  (s.dim() == 2 && s.size(0) == x.size(0) && s.size(1) == x.size(1)),
              "scale_channels: s must be [C] or [N, C] for x of shape ", x.sizes(), ", got ",
              s.sizes());
#ifdef NORMEXP_WITH_CUDA
  if (cuda_impl::scale_channels_cuda_takes(x)) return cuda_impl::scale_channels_cuda(x, s);
#endif
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  if (s.dim() == 2) shape[0] = x.size(0);
  return x * s.view(shape).to(x.scalar_type());
}

}  // namespace normexp::nn
