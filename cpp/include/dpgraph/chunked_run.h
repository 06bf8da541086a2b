// Running a local model on a large graph in chunks of centers (bounded memory).
//
// For a local model (receptive field == rcut) an owned node's energy depends
// only on its own incoming edges, so the graph is cut into chunks of centers,
// each a NeighborGraph of its own: the chunk's centers are its owned nodes,
// their neighbors its ghost nodes (which report zero energy and carry the
// exact reaction forces). The chunks' energies, virials and scattered-back
// forces sum to the numbers of one call (fp64 rounding) at a peak memory set
// by the chunk size. Centers are degree-sorted before they are cut, so each
// chunk pads its attention blocks to about its own degree. For dense-semantics
// models every chunk starts with a center of the type of its frame's first
// atom (deepmd-kit embeds empty slots with that type).
//
// Same algorithm as python/dpgraph/models/chunking.py; tensors stay on the
// graph's device (CPU or CUDA), only per-node degrees visit the host.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "dpgraph/model.h"
#include "dpgraph/neighbor_graph.h"

namespace dpgraph {

/// Default activation memory per model call (bytes): 1 GiB.
constexpr int64_t kDefaultMemoryBudget = int64_t(1) << 30;
/// Upper bound on edges per chunk on a CPU: larger chunks' (C, D, D) blocks leave the cache.
constexpr int64_t kCacheEdges = 32768;

/// Edges per chunk for `budget` bytes, with a package's estimate `bytes_per_edge`
/// = (a, b): a call on E edges of mean degree `degree` keeps about E (a + b degree) bytes.
/// On a CPU (`cpu`) the result is also capped at kCacheEdges.
int64_t max_chunk_edges(std::pair<double, double> bytes_per_edge, double degree, int64_t budget, bool cpu);

/// One chunk: frame index and parent node indices of its centers (host).
struct ChunkPlan {
  int64_t frame;
  std::vector<int64_t> centers;
};

/// Cut every frame's owned nodes into degree-sorted chunks of at most `max_edges`
/// real incoming edges (a single heavier center is a chunk of its own).
/// `first_type`: every chunk starts with a center of its frame's first node's type.
std::vector<ChunkPlan> plan_chunks(const NeighborGraph& graph, int64_t max_edges, bool first_type);

/// Run `model` chunk by chunk and sum: the parent graph's five outputs, in the
/// model's dtype and on its device. Inputs are assumed validated.
Outputs run_chunked(Model& model, const NeighborGraph& graph, const std::vector<ChunkPlan>& plans);

/// One call, or chunks when the model is local and the graph exceeds the budget.
Outputs run_within_budget(Model& model, const NeighborGraph& graph, int64_t memory_budget);

}  // namespace dpgraph
