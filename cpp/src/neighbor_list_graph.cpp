// NeighborListGraph: a NeighborGraph from an MD engine's neighbor list.
//
// On a rebuild (ago == 0) the CSR list is flattened on the host into
// (extended src, center) pairs, sorted center-major and copied to the device
// once. Every step only the coordinates are copied; edge_vec is recomputed
// from them and the pairs that are in the list (the engine adds a skin) but
// beyond rcut are dropped by a cutoff mask before the model sees the graph:
// skin pairs would otherwise cost the attention ~(1 + skin/rcut)^6 in work.
#include <algorithm>
#include <numeric>

#include "dpgraph/error.h"
#include "dpgraph/graph_builder.h"

namespace dpgraph {
namespace {
// LAMMPS stores special-bond flags in the top bits of neighbor indices.
constexpr int kNeighMask = 0x1FFFFFFF;
}  // namespace

NeighborListGraph::NeighborListGraph(double rcut, at::ScalarType dtype, at::Device device)
    : rcut_(rcut), dtype_(dtype), device_(device) {}

void NeighborListGraph::rebuild_topology(int nlocal, int nall, const NeighborList& list,
                                         const int* mapping, bool ghosts_as_nodes) {
  if (!ghosts_as_nodes && mapping == nullptr && nall > nlocal)
    throw Error("folding ghost atoms onto their owners needs the ghost -> owner mapping; pass it or keep ghosts "
                "as extra nodes (several MPI ranks)");
  if (list.n_centers < 0) throw Error("the neighbor list has a negative number of centers");
  if (list.n_centers > 0 && (list.centers == nullptr || list.offsets == nullptr))
    throw Error("the neighbor list has centers but no centers/offsets arrays");
  if (list.n_centers > 0 && list.offsets[0] < 0)
    throw Error("neighbor list offsets[0] = " + std::to_string(list.offsets[0]) + " is negative");
  for (int c = 0; c < list.n_centers; ++c)
    if (list.offsets[c + 1] < list.offsets[c])
      throw Error("neighbor list offsets must be non-decreasing (offsets[" + std::to_string(c) + "] = " +
                  std::to_string(list.offsets[c]) + " > offsets[" + std::to_string(c + 1) + "] = " +
                  std::to_string(list.offsets[c + 1]) + ")");
  const int64_t total = list.n_centers > 0 ? list.offsets[list.n_centers] - list.offsets[0] : 0;
  if (total > 0 && list.neighbors == nullptr) throw Error("the neighbor list has pairs but no neighbors array");
  std::vector<int64_t> src, dst;
  src.reserve(total);
  dst.reserve(total);
  const int n_nodes = ghosts_as_nodes ? nall : nlocal;
  std::vector<int> seen(nall, -1);  // last center that listed each atom: catches repeated centers and neighbors
  std::vector<char> is_center(nall, 0);
  for (int c = 0; c < list.n_centers; ++c) {
    const int i = list.centers[c];
    if (i < 0 || i >= n_nodes)
      throw Error("neighbor list center " + std::to_string(i) + " is outside [0, " + std::to_string(n_nodes) +
                  ")" + (ghosts_as_nodes ? "" : "; ghost centers need ghosts kept as nodes"));
    if (is_center[i]) throw Error("atom " + std::to_string(i) + " appears twice in the neighbor list's centers");
    is_center[i] = 1;
    for (int k = list.offsets[c]; k < list.offsets[c + 1]; ++k) {
      // mask first: flags in bits 30-31 make a valid index negative as an int; garbage (e.g. -1) masks to
      // an index far beyond nall and is refused below
      const int j = list.neighbors[k] & kNeighMask;
      if (j >= nall)
        throw Error("neighbor index " + std::to_string(j) + " (raw " + std::to_string(list.neighbors[k]) +
                    ", LAMMPS' special-bond bits removed) of atom " + std::to_string(i) + " is outside [0, " +
                    std::to_string(nall) + ")");
      if (seen[j] == i)
        throw Error("atom " + std::to_string(j) + " is listed twice as a neighbor of atom " + std::to_string(i) +
                    "; a full neighbor list has each pair once per center");
      seen[j] = i;
      src.push_back(j);
      dst.push_back(i);
    }
  }
  std::vector<int64_t> order(src.size());
  std::iota(order.begin(), order.end(), 0);
  if (!std::is_sorted(dst.begin(), dst.end()))
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return dst[a] < dst[b]; });
  const int64_t e_real = static_cast<int64_t>(src.size());
  std::vector<int64_t> node_src(e_real + kMinPaddingEdges, 0), node_dst(e_real + kMinPaddingEdges, 0);
  std::vector<int64_t> ext_src(e_real), ext_dst(e_real);
  for (int64_t e = 0; e < e_real; ++e) {
    const int64_t j = src[order[e]], i = dst[order[e]];
    ext_src[e] = j;
    ext_dst[e] = i;
    int64_t owner = j;
    if (!ghosts_as_nodes && j >= nlocal) {
      owner = mapping[j];
      if (owner < 0 || owner >= nlocal)
        throw Error("ghost atom " + std::to_string(j) + " maps to " + std::to_string(owner) +
                    ", which is not an owned atom in [0, " + std::to_string(nlocal) + ")");
    }
    node_src[e] = owner;
    node_dst[e] = i;
  }
  auto lopt = at::TensorOptions().dtype(at::kLong);
  auto host_edges = at::stack({at::tensor(node_src, lopt), at::tensor(node_dst, lopt)});
  topology_ = host_edges.to(device_).contiguous();
  graph_.n_node = at::tensor(std::vector<int64_t>{n_nodes, nlocal}, lopt).reshape({1, 2}).to(device_);
  ext_src_ = at::tensor(ext_src, lopt).to(device_);
  ext_dst_ = at::tensor(ext_dst, lopt).to(device_);
  nlocal_ = nlocal;
  nall_ = nall;
  ghosts_as_nodes_ = ghosts_as_nodes;
  ++rebuilds_;
}

const NeighborGraph& NeighborListGraph::build(const double* x, const int* atype, int nlocal, int nall,
                                              const NeighborList& list, const int* mapping, bool ghosts_as_nodes,
                                              int ago) {
  if (nlocal < 0 || nall < nlocal) throw Error("need 0 <= nlocal <= nall atoms");
  const bool reuse = ago > 0 && nlocal == nlocal_ && nall == nall_ && ghosts_as_nodes == ghosts_as_nodes_;
  if (!reuse) rebuild_topology(nlocal, nall, list, mapping, ghosts_as_nodes);
  const int n_nodes = ghosts_as_nodes ? nall : nlocal;
  std::vector<int64_t> types(atype, atype + n_nodes);  // types may change without a rebuild (atom swaps)
  graph_.atype = at::tensor(types, at::TensorOptions().dtype(at::kLong)).to(device_);

  auto host = at::from_blob(const_cast<double*>(x), {nall, 3}, at::TensorOptions().dtype(at::kDouble));
  auto pos = host.to(device_);  // copies: the engine owns x
  if (!at::isfinite(pos).all().item<bool>()) {
    auto bad = at::isfinite(pos).all(1).logical_not().nonzero()[0][0].item<int64_t>();
    throw Error("coordinates of atom " + std::to_string(bad) + " are NaN or inf; the simulation has blown up or "
                "the input is wrong");
  }
  auto vec = pos.index({ext_src_}) - pos.index({ext_dst_});  // (E_real, 3) float64
  auto inside = at::linalg_vector_norm(vec, 2, {1}) < rcut_;
  const auto fopt = at::TensorOptions().dtype(at::kDouble).device(device_);
  auto keep = inside.nonzero().squeeze(1);  // order-preserving: edges stay sorted by dst
  const int64_t e = keep.numel();
  auto pad = at::zeros({2, kMinPaddingEdges}, topology_.options());
  graph_.edge_index = at::cat({topology_.index_select(1, keep), pad}, 1).contiguous();
  graph_.edge_vec = at::cat({vec.index_select(0, keep), at::zeros({kMinPaddingEdges, 3}, fopt)}).to(dtype_).contiguous();
  graph_.edge_mask = at::cat({at::ones({e}, fopt.dtype(at::kBool)), at::zeros({kMinPaddingEdges}, fopt.dtype(at::kBool))});
  return graph_;
}

}  // namespace dpgraph
