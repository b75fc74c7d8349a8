#pragma once
// Private to lib/backend: the c10d groups this build was compiled with, each defined in its
// own translation unit (process_group_gloo.cpp, process_group_nccl.cpp) because their headers
// need their libraries' headers and defines.

#include <chrono>
#include <memory>

#include <c10/util/intrusive_ptr.h>

#include "backend/process_group.h"

namespace c10d {
class Store;
}

namespace normexp::backend::detail {

#ifdef NORMEXP_WITH_GLOO
std::unique_ptr<ProcessGroup> make_gloo(const c10::intrusive_ptr<c10d::Store>& store,
                                        const Launch& launch, std::chrono::milliseconds timeout);
#endif
#ifdef NORMEXP_WITH_NCCL
std::unique_ptr<ProcessGroup> make_nccl(const c10::intrusive_ptr<c10d::Store>& store,
                                        const Launch& launch, std::chrono::milliseconds timeout);
#endif

}  // namespace normexp::backend::detail
