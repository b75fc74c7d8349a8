#include "models/model.h"

#include <torch/torch.h>

#include <stdexcept>

namespace normexp::models {

torch::Tensor ModelImpl::features(torch::Tensor) {
  throw std::logic_error(name() + " does not expose pooled features");
}

int64_t ModelImpl::feature_dim() const {
  throw std::logic_error(name() + " does not expose pooled features");
}

}  // namespace normexp::models
