#include "dpgraph/allocator.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dpgraph {

bool tune_allocator() {
  static int state = -1;  // -1 not tried, 0 off/failed, 1 done
  if (state >= 0) return state == 1;
  const char* env = std::getenv("DPGRAPH_TUNE_MALLOC");
  if (env && std::strcmp(env, "0") == 0) return (state = 0) == 1;
#if defined(__GLIBC__)
  const bool ok = mallopt(M_MMAP_MAX, 0) && mallopt(M_TRIM_THRESHOLD, 0x7fffffff) && mallopt(M_TOP_PAD, 64 << 20);
  state = ok ? 1 : 0;
#else
  state = 0;
#endif
  return state == 1;
}

}  // namespace dpgraph
