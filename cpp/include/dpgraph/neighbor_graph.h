// The NeighborGraph: the whole input of an exported dpgraph model (ABI v1,
// docs/design.md, section "The ABI"). Five tensors, in this order:
//
//   atype      (N,)    int64  model type index of each node
//   n_node     (nf, 2) int64  per frame [nodes, owned nodes]; owned first
//   edge_index (2, E)  int64  row 0 src (neighbor), row 1 dst (center)
//   edge_vec   (E, 3)  float  r_src - r_dst in Å (float32 or float64)
//   edge_mask  (E,)    bool   true for real edges
//
// Real edges are sorted by dst; the last >= 2 edges are masked padding.
// Masked edges elsewhere are tolerated and contribute exactly zero (the
// builders do not produce them; the neighbor-list graph drops pairs beyond
// the cutoff instead).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <vector>

namespace dpgraph {

constexpr int64_t kMinPaddingEdges = 2;

struct NeighborGraph {
  at::Tensor atype;
  at::Tensor n_node;
  at::Tensor edge_index;
  at::Tensor edge_vec;
  at::Tensor edge_mask;

  int64_t n_nodes() const { return atype.size(0); }
  int64_t n_edges() const { return edge_vec.size(0); }
  int64_t n_frames() const { return n_node.size(0); }

  /// The five tensors in ABI order.
  std::vector<at::Tensor> tensors() const { return {atype, n_node, edge_index, edge_vec, edge_mask}; }

  /// Check the ABI (dtypes, shapes, contiguity, index ranges, sortedness,
  /// padding, finite vectors, overlapping atoms, frame mixing). `ntypes` and
  /// `dtype`, when given, are the model's. Throws dpgraph::Error naming the
  /// field and the fix.
  void validate(std::optional<int64_t> ntypes = std::nullopt,
                std::optional<at::ScalarType> dtype = std::nullopt) const;
};

}  // namespace dpgraph
