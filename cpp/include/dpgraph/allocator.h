// Process-level heap tuning for repeated same-size evaluations (MD steps).
#pragma once

namespace dpgraph {

// glibc serves every allocation above its mmap threshold with a fresh mmap and
// unmaps it on free, so each large tensor of every evaluation is page-faulted
// in anew (a 1,536-atom DPA1 evaluation ran 2.3x slower that way). This keeps
// freed memory in the heap instead: the process holds its peak resident size.
// Same settings as Python's dpgraph.tune_allocator(). Returns false where the
// C library is not glibc or the environment variable DPGRAPH_TUNE_MALLOC=0.
// Idempotent.
bool tune_allocator();

}  // namespace dpgraph
