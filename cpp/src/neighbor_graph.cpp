// NeighborGraph::validate: the checks the AOTInductor loader does not do.
// Without them int32 indices or unsorted edges give silently wrong forces.
#include "dpgraph/neighbor_graph.h"

#include <sstream>
#include <string>

#include "dpgraph/error.h"

namespace dpgraph {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error("invalid NeighborGraph: " + msg); }

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

void check_dtypes(const NeighborGraph& g, std::optional<at::ScalarType> dtype) {
  const std::pair<const char*, const at::Tensor*> ints[] = {
      {"atype", &g.atype}, {"n_node", &g.n_node}, {"edge_index", &g.edge_index}};
  for (const auto& [name, t] : ints) {
    if (!t->defined()) fail(std::string(name) + " is undefined");
    if (t->scalar_type() != at::kLong)
      fail(std::string(name) + " must be int64, got " + std::string(c10::toString(t->scalar_type())) +
           "; convert with .to(torch::kInt64)");
  }
  if (!g.edge_vec.defined() || !g.edge_mask.defined()) fail("edge_vec or edge_mask is undefined");
  auto vt = g.edge_vec.scalar_type();
  if (vt != at::kFloat && vt != at::kDouble)
    fail("edge_vec must be float32 or float64, got " + std::string(c10::toString(vt)));
  if (dtype && vt != *dtype)
    fail("edge_vec is " + std::string(c10::toString(vt)) + " but the model runs in " +
         std::string(c10::toString(*dtype)) + "; convert edge_vec to the model dtype");
  if (g.edge_mask.scalar_type() != at::kBool)
    fail("edge_mask must be bool, got " + std::string(c10::toString(g.edge_mask.scalar_type())));
}

void check_shapes(const NeighborGraph& g) {
  if (g.atype.dim() != 1) fail("atype must be 1-D (N,), got shape " + shape_of(g.atype));
  if (g.n_node.dim() != 2 || g.n_node.size(1) != 2 || g.n_node.size(0) < 1)
    fail("n_node must be (nf >= 1, 2), got shape " + shape_of(g.n_node));
  if (g.edge_index.dim() != 2 || g.edge_index.size(0) != 2)
    fail("edge_index must be (2, E), got shape " + shape_of(g.edge_index));
  const int64_t e = g.edge_index.size(1);
  if (g.edge_vec.dim() != 2 || g.edge_vec.size(0) != e || g.edge_vec.size(1) != 3)
    fail("edge_vec must be (E, 3) with E = " + std::to_string(e) + ", got " + shape_of(g.edge_vec));
  if (g.edge_mask.dim() != 1 || g.edge_mask.size(0) != e)
    fail("edge_mask must be (E,) with E = " + std::to_string(e) + ", got " + shape_of(g.edge_mask));
  if (e < kMinPaddingEdges)
    fail("needs at least " + std::to_string(kMinPaddingEdges) + " edges (trailing padding), got " +
         std::to_string(e));
  for (const auto& t : g.tensors()) {
    if (t.device() != g.atype.device())
      fail("tensors live on different devices; move all five to the model's device");
    if (!t.is_contiguous()) fail("tensors must be contiguous; call .contiguous()");
  }
}

void check_values(const NeighborGraph& g, std::optional<int64_t> ntypes) {
  const int64_t n = g.n_nodes();
  auto nodes = g.n_node.select(1, 0), owned = g.n_node.select(1, 1);
  const int64_t total = nodes.sum().item<int64_t>();
  if (total != n)
    fail("sum(n_node[:, 0]) = " + std::to_string(total) + " but atype has " + std::to_string(n) + " nodes");
  if ((owned < 0).logical_or(owned > nodes).any().item<bool>())
    fail("n_node[:, 1] (owned nodes) must be in [0, n_node[:, 0]] for every frame");
  if (n > 0) {
    if ((g.atype < 0).any().item<bool>()) fail("atype has negative type indices");
    const int64_t tmax = g.atype.max().item<int64_t>();
    if (ntypes && tmax >= *ntypes)
      fail("atype has type index " + std::to_string(tmax) + " but the model has " + std::to_string(*ntypes) +
           " types");
  }
  const int64_t e = g.n_edges();
  if (g.edge_mask.slice(0, e - kMinPaddingEdges).any().item<bool>())
    fail("the last " + std::to_string(kMinPaddingEdges) +
         " edges must be masked padding (edge_mask false); append padding edges (src = dst = 0, edge_vec = 0)");
  if ((g.edge_index < 0).logical_or(g.edge_index >= std::max<int64_t>(n, 1)).any().item<bool>())
    fail("edge_index has entries outside [0, N) with N = " + std::to_string(n));
  if (!at::isfinite(g.edge_vec).all().item<bool>())
    fail("edge_vec has non-finite entries; check the coordinates for NaN or inf");
  auto mask = g.edge_mask;
  auto src = g.edge_index.select(0, 0).masked_select(mask);
  auto dst = g.edge_index.select(0, 1).masked_select(mask);
  if (dst.numel() > 1 && (dst.slice(0, 1) < dst.slice(0, 0, -1)).any().item<bool>())
    fail("real edges must be sorted by dst (center-major); sort them with a stable sort on edge_index[1]");
  if (src.numel() == 0) return;
  auto ends = at::cumsum(nodes, 0);
  auto frame_src = at::searchsorted(ends, src, /*out_int32=*/false, /*right=*/true);
  auto frame_dst = at::searchsorted(ends, dst, false, true);
  if ((frame_src != frame_dst).any().item<bool>()) fail("an edge connects nodes of different frames");
  auto vec = g.edge_vec.index({mask});
  auto r = at::linalg_vector_norm(vec, 2, {1});
  auto close = r < 1e-6;
  if (close.any().item<bool>()) {
    const int64_t k = close.nonzero()[0][0].item<int64_t>();
    fail("overlapping atoms: edge " + std::to_string(src[k].item<int64_t>()) + " -> " +
         std::to_string(dst[k].item<int64_t>()) +
         " has zero length; two atoms (or an atom and its periodic image) sit on top of each other");
  }
}

}  // namespace

void NeighborGraph::validate(std::optional<int64_t> ntypes, std::optional<at::ScalarType> dtype) const {
  check_dtypes(*this, dtype);
  check_shapes(*this);
  check_values(*this, ntypes);
}

}  // namespace dpgraph
