#include "dpgraph/chunked_run.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace dpgraph {
namespace {

/// Move/merge centers so that each chunk's first center has type t0 (dense semantics).
void lead_with_type(std::vector<std::vector<int64_t>>& chunks, const int64_t* atype, int64_t t0) {
  auto count_t0 = [&](const std::vector<int64_t>& c) {
    return std::count_if(c.begin(), c.end(), [&](int64_t k) { return atype[k] == t0; });
  };
  int64_t pool = 0;
  for (const auto& c : chunks) pool += count_t0(c);
  while (static_cast<int64_t>(chunks.size()) > pool && chunks.size() > 1) {  // merge the smallest neighbours
    size_t best = 0;
    for (size_t j = 1; j + 1 < chunks.size(); ++j)
      if (chunks[j].size() + chunks[j + 1].size() < chunks[best].size() + chunks[best + 1].size()) best = j;
    chunks[best].insert(chunks[best].end(), chunks[best + 1].begin(), chunks[best + 1].end());
    chunks.erase(chunks.begin() + best + 1);
  }
  if (pool == 0) return;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (count_t0(chunks[i]) == 0) {  // borrow from the chunk with most (>= 2 by pigeonhole)
      size_t donor = 0;
      for (size_t j = 1; j < chunks.size(); ++j)
        if (count_t0(chunks[j]) > count_t0(chunks[donor])) donor = j;
      auto& d = chunks[donor];
      auto it = std::find_if(d.rbegin(), d.rend(), [&](int64_t k) { return atype[k] == t0; });
      chunks[i].push_back(*it);
      d.erase(std::next(it).base());
    }
    auto& c = chunks[i];
    auto lead = std::find_if(c.begin(), c.end(), [&](int64_t k) { return atype[k] == t0; });
    std::rotate(c.begin(), lead, lead + 1);
  }
}

}  // namespace

int64_t max_chunk_edges(std::pair<double, double> bytes_per_edge, double degree, int64_t budget, bool cpu) {
  const double per_edge = std::max(bytes_per_edge.first + bytes_per_edge.second * std::max(degree, 1.0), 1.0);
  const double edges = std::min(static_cast<double>(budget) / per_edge, 4e18);
  const int64_t cap = cpu ? kCacheEdges : std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(1, std::min<int64_t>(cap, static_cast<int64_t>(edges)));
}

std::vector<ChunkPlan> plan_chunks(const NeighborGraph& graph, int64_t max_edges, bool first_type) {
  const int64_t n = graph.n_nodes();
  auto real_dst = graph.edge_index[1].masked_select(graph.edge_mask);
  auto deg_t = at::bincount(real_dst, {}, n).to(at::kCPU, at::kLong).contiguous();
  auto n_node = graph.n_node.to(at::kCPU).contiguous();
  auto atype_t = graph.atype.to(at::kCPU).contiguous();
  const int64_t* deg = deg_t.data_ptr<int64_t>();
  const int64_t* nn = n_node.data_ptr<int64_t>();
  const int64_t* atype = atype_t.data_ptr<int64_t>();
  std::vector<ChunkPlan> plans;
  int64_t start = 0;
  for (int64_t f = 0; f < graph.n_frames(); ++f) {
    const int64_t n_f = nn[2 * f], owned = nn[2 * f + 1];
    std::vector<int64_t> nodes(owned);
    std::iota(nodes.begin(), nodes.end(), start);
    std::stable_sort(nodes.begin(), nodes.end(), [&](int64_t a, int64_t b) { return deg[a] > deg[b]; });
    std::vector<std::vector<int64_t>> chunks;
    int64_t edges = 0;
    for (int64_t k : nodes) {
      if (chunks.empty() || (edges + deg[k] > max_edges && !chunks.back().empty())) {
        chunks.emplace_back();
        edges = 0;
      }
      chunks.back().push_back(k);
      edges += deg[k];
    }
    if (first_type && !chunks.empty()) lead_with_type(chunks, atype, atype[start]);
    for (auto& c : chunks) plans.push_back({f, std::move(c)});
    start += n_f;
  }
  return plans;
}

Outputs run_chunked(Model& model, const NeighborGraph& graph, const std::vector<ChunkPlan>& plans) {
  const int64_t n = graph.n_nodes(), nf = graph.n_frames(), n_chunks = static_cast<int64_t>(plans.size());
  const auto dev = graph.atype.device();
  const auto lopt = at::TensorOptions().dtype(at::kLong);
  // chunk of every node (n_chunks: none), edges grouped by chunk with their dst order kept
  std::vector<int64_t> chunk_of_host(n, n_chunks);
  for (int64_t i = 0; i < n_chunks; ++i)
    for (int64_t k : plans[i].centers) chunk_of_host[k] = i;
  auto chunk_of = at::tensor(chunk_of_host, lopt).to(dev);
  auto src_all = graph.edge_index[0], dst_all = graph.edge_index[1];
  auto edge_chunk = at::where(graph.edge_mask, chunk_of.index_select(0, dst_all), at::full_like(dst_all, n_chunks));
  auto order = at::argsort(edge_chunk, /*stable=*/true);
  auto counts = at::bincount(edge_chunk, {}, n_chunks + 1).to(at::kCPU).contiguous();
  std::vector<int64_t> offset(n_chunks + 1, 0);
  for (int64_t i = 0; i < n_chunks; ++i) offset[i + 1] = offset[i] + counts.data_ptr<int64_t>()[i];

  const auto fopt = graph.edge_vec.options();
  Outputs acc{at::zeros({nf}, fopt), at::zeros({n}, fopt), at::zeros({n, 3}, fopt), at::zeros({nf, 9}, fopt),
              at::zeros({n, 9}, fopt)};
  auto local = at::empty({n}, lopt.device(dev));
  const auto bopt = at::TensorOptions().dtype(at::kBool).device(dev);
  for (int64_t i = 0; i < n_chunks; ++i) {
    const auto& plan = plans[i];
    const int64_t nc = static_cast<int64_t>(plan.centers.size());
    auto centers = at::tensor(plan.centers, lopt).to(dev);
    auto e = order.slice(0, offset[i], offset[i + 1]);
    auto src = src_all.index_select(0, e), dst = dst_all.index_select(0, e);
    auto outside = src.masked_select(chunk_of.index_select(0, src) != i);
    auto ghosts = std::get<0>(at::_unique(outside, /*sorted=*/true, /*return_inverse=*/false));
    auto nodes = at::cat({centers, ghosts});
    local.index_put_({nodes}, at::arange(nodes.size(0), lopt.device(dev)));
    auto new_src = local.index_select(0, src), new_dst = local.index_select(0, dst);
    auto by_dst = at::argsort(new_dst, /*stable=*/true);
    auto pad = at::zeros({kMinPaddingEdges}, lopt.device(dev));
    NeighborGraph sub;
    sub.atype = graph.atype.index_select(0, nodes);
    sub.n_node = at::tensor(std::vector<int64_t>{nodes.size(0), nc}, lopt).reshape({1, 2}).to(dev);
    sub.edge_index = at::stack({at::cat({new_src.index_select(0, by_dst), pad}),
                                at::cat({new_dst.index_select(0, by_dst), pad})});
    sub.edge_vec = at::cat({graph.edge_vec.index_select(0, e.index_select(0, by_dst)),
                            at::zeros({kMinPaddingEdges, 3}, fopt)});
    sub.edge_mask = at::cat({at::ones({e.size(0)}, bopt), at::zeros({kMinPaddingEdges}, bopt)});
    auto out = model.run(sub, /*validate=*/false);
    acc.energy.select(0, plan.frame).add_(out.energy[0]);
    acc.virial.select(0, plan.frame).add_(out.virial[0]);
    acc.atom_energy.index_add_(0, centers, out.atom_energy.slice(0, 0, nc));
    acc.force.index_add_(0, nodes, out.force);
    acc.atom_virial.index_add_(0, nodes, out.atom_virial);
  }
  return acc;
}

namespace {
Outputs run_budget(Model& model, const NeighborGraph& graph, int64_t memory_budget) {
  const auto& info = model.info();
  if (memory_budget <= 0 || !info.is_local() || graph.n_nodes() == 0) return model.run(graph, false);
  const int64_t n_real = graph.edge_mask.sum().item<int64_t>();
  const int64_t n_owned = std::max<int64_t>(graph.n_node.select(1, 1).sum().item<int64_t>(), 1);
  const int64_t max_edges =
      max_chunk_edges(info.bytes_per_edge, static_cast<double>(n_real) / static_cast<double>(n_owned), memory_budget,
                      graph.atype.device().is_cpu());
  if (n_real <= max_edges) return model.run(graph, false);
  return run_chunked(model, graph, plan_chunks(graph, max_edges, info.dense_first_type));
}
}  // namespace

Outputs run_within_budget(Model& model, const NeighborGraph& graph, int64_t memory_budget) {
  auto out = run_budget(model, graph, memory_budget);
  check_finite(out, model.info().path);
  return out;
}

}  // namespace dpgraph
