// A process-wide pool of loaded AOTInductor packages (internal to libdpgraph).
//
// torch's AOTInductor wrapper .so has STB_GNU_UNIQUE symbols, so glibc marks
// it NODELETE: dlclose never unmaps it, and every fresh load of a package maps
// another copy for the rest of the process (about 0.5 MB per load of a small
// model, measured by bench/load_cycles.py). The pool hands a released loader of
// the same file (same inode, size and modification time) and device to the
// next Model instead of loading it again. Instances alive at the same time
// still get loaders of their own, so parallel evaluation is unchanged. At most
// kMaxIdleLoaders released loaders are kept (their weights stay resident);
// older ones, and all of them at process exit, are destroyed (which removes
// their extraction directories).
#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>

namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace dpgraph {

inline constexpr std::size_t kMaxIdleLoaders = 4;

/// A loader of `path` on `device` (a released one of the same file when the pool
/// has it); it returns to the pool when the last reference goes. Throws what
/// torch's loader throws.
std::shared_ptr<torch::inductor::AOTIModelPackageLoader> acquire_loader(const std::string& path,
                                                                        const c10::Device& device);

}  // namespace dpgraph
