#include "loader_pool.h"

#include <sys/stat.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdlib>
#include <list>
#include <mutex>
#include <tuple>
#include <utility>

namespace dpgraph {
namespace {

using Loader = torch::inductor::AOTIModelPackageLoader;

/// File identity and device: a package rewritten in place or replaced by rename gets a new key.
struct Key {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  std::string device;
  bool operator==(const Key& o) const {
    return std::tie(dev, ino, size, mtime_ns, device) == std::tie(o.dev, o.ino, o.size, o.mtime_ns, o.device);
  }
};

bool file_key(const std::string& path, const c10::Device& device, Key& key) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return false;
  key.dev = st.st_dev;
  key.ino = st.st_ino;
  key.size = st.st_size;
  key.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  key.device = device.str();
  return true;
}

struct Pool {
  std::mutex mutex;
  std::list<std::pair<Key, std::unique_ptr<Loader>>> idle;  // most recently released first
};

void release_idle_at_exit();

Pool& pool() {
  // Never destroyed (no teardown-order issue with libtorch's statics); the idle loaders are
  // destroyed by an exit handler, which removes their extraction directories in $TMPDIR.
  static Pool* p = [] {
    auto* created = new Pool();
    std::atexit(release_idle_at_exit);
    return created;
  }();
  return *p;
}

void release_idle_at_exit() {
  std::list<std::pair<Key, std::unique_ptr<Loader>>> idle;
  {
    std::lock_guard<std::mutex> lock(pool().mutex);
    idle.swap(pool().idle);
  }
}

std::shared_ptr<Loader> lease(std::unique_ptr<Loader> loader, const Key& key, bool pooled) {
  Loader* raw = loader.release();
  return std::shared_ptr<Loader>(raw, [key, pooled](Loader* l) {
    std::unique_ptr<Loader> owned(l);
    if (!pooled) return;
    std::unique_ptr<Loader> evicted;  // destroyed outside the lock
    {
      std::lock_guard<std::mutex> lock(pool().mutex);
      pool().idle.emplace_front(key, std::move(owned));
      if (pool().idle.size() > kMaxIdleLoaders) {
        evicted = std::move(pool().idle.back().second);
        pool().idle.pop_back();
      }
    }
  });
}

}  // namespace

std::shared_ptr<Loader> acquire_loader(const std::string& path, const c10::Device& device) {
  Key key;
  const bool pooled = file_key(path, device, key);
  if (pooled) {
    std::lock_guard<std::mutex> lock(pool().mutex);
    for (auto it = pool().idle.begin(); it != pool().idle.end(); ++it) {
      if (it->first == key) {
        auto loader = std::move(it->second);
        pool().idle.erase(it);
        return lease(std::move(loader), key, true);
      }
    }
  }
  auto loader = std::make_unique<Loader>(path, "model", /*run_single_threaded=*/false, /*num_runners=*/1,
                                         device.is_cuda() ? device.index() : static_cast<c10::DeviceIndex>(-1));
  return lease(std::move(loader), key, pooled);
}

}  // namespace dpgraph
