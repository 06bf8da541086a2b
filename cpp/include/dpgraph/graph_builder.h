// Building a NeighborGraph, with torch tensor ops so that one code path runs
// on the CPU and on CUDA (the graph is assembled on the model's device).
//
// Two sources:
//  * coordinates + cell + pbc (build_graph): an O(N) cell list; triclinic
//    cells, open or mixed boundaries, cells thinner than 2 rcut; periodic
//    images are folded onto their owners (src = owner, shift in edge_vec);
//  * an MD engine's neighbor list with ghost atoms (NeighborListGraph, a CSR
//    list: centers / offsets / neighbors): ghosts are folded
//    onto their owners (one process) or kept as extra nodes (several MPI
//    ranks); the topology is cached while the list does not change and only
//    edge_vec and the cutoff mask (which drops skin pairs) are recomputed.
//
// Lengths in Å. Cells are 3x3 with ROWS the lattice vectors.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>

#include "dpgraph/neighbor_graph.h"

namespace dpgraph {

/// Pairs closer than this (Å) are reported as overlapping atoms.
constexpr double kOverlapTolerance = 1e-6;

/// Graph of all pairs with 0 < |r| < rcut.
///
/// coords : (nf, n, 3) or (n, 3) float, Å (any float dtype; geometry in float64)
/// atype  : (nf, n) or (n,) integer model types
/// cell   : (nf, 3, 3), (3, 3) or (nf, 9); undefined tensor = open boundaries
/// pbc    : periodicity along each lattice vector (ignored without a cell)
/// dtype  : float dtype of edge_vec (the model's)
/// Returns a graph on coords' device, n_node[f] = [n, n] (Model::run validates it).
/// Throws dpgraph::Error for NaN coordinates, singular cells, overlapping atoms.
NeighborGraph build_graph(const at::Tensor& coords, const at::Tensor& atype, const at::Tensor& cell,
                          std::array<bool, 3> pbc, double rcut, at::ScalarType dtype,
                          int64_t n_pad = kMinPaddingEdges);

/// (3,) distances between opposite faces of a (3, 3) cell: V / |a_j x a_k|.
at::Tensor perpendicular_widths(const at::Tensor& cell);

/// A full neighbor list in CSR form (host memory), the one layout libdpgraph
/// reads (the LAMMPS plugin and the Python bindings both pass it as is).
/// Indices refer to the extended atom array: owned atoms [0, nlocal), then
/// ghosts. The neighbors of center centers[c] are
/// neighbors[offsets[c]] .. neighbors[offsets[c + 1] - 1]. LAMMPS'
/// special-bond flags (bits 30-31 of a neighbor index) are ignored.
struct NeighborList {
  int n_centers = 0;               ///< number of centers
  const int* centers = nullptr;    ///< (n_centers,) center atom indices, each at most once
  const int* offsets = nullptr;    ///< (n_centers + 1,) non-decreasing, offsets[0] >= 0
  const int* neighbors = nullptr;  ///< (offsets[n_centers],) neighbor atom indices
};

/// Graph from an MD engine's neighbor list, with a cached topology.
class NeighborListGraph {
 public:
  /// rcut: the model cutoff (the engine's list may include a skin);
  /// dtype/device: the model's.
  NeighborListGraph(double rcut, at::ScalarType dtype, at::Device device);

  /// x       : (nall * 3) coordinates of owned + ghost atoms, Å (host)
  /// atype   : (nall,) model type of every atom (host)
  /// nlocal  : owned atoms; nall = nlocal + ghosts
  /// mapping : (nall,) owner index of every atom (ghost -> owned), or nullptr;
  ///           required when ghosts are folded
  /// ghosts_as_nodes : false = fold ghosts onto owners (one process, nodes =
  ///           nlocal); true = ghosts are extra nodes (several ranks, nodes = nall)
  /// ago     : steps since the list was rebuilt; > 0 reuses the cached topology
  const NeighborGraph& build(const double* x, const int* atype, int nlocal, int nall, const NeighborList& list,
                             const int* mapping, bool ghosts_as_nodes, int ago);

  /// The graph of the last build().
  const NeighborGraph& graph() const { return graph_; }
  /// Number of topology rebuilds so far (for tests and diagnostics).
  int64_t rebuilds() const { return rebuilds_; }

 private:
  void rebuild_topology(int nlocal, int nall, const NeighborList& list, const int* mapping,
                        bool ghosts_as_nodes);

  double rcut_;
  at::ScalarType dtype_;
  at::Device device_;
  NeighborGraph graph_;
  at::Tensor ext_src_, ext_dst_;  // (E_list,) indices into the extended coordinates
  at::Tensor topology_;           // (2, E_list) node indices [src; dst] of every listed pair
  int nlocal_ = -1, nall_ = -1;
  bool ghosts_as_nodes_ = false;
  int64_t rebuilds_ = 0;
};

}  // namespace dpgraph
