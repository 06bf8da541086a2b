// DeepPot (C++ graph builder + AOTI model) == the eager PyTorch model, fp64.
#include "dpgraph/deep_pot.h"

#include "fixtures.h"

namespace {

dpgraph::DeepPot& pot() {
  static dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  return dp;
}

class CoordsCase : public ::testing::TestWithParam<std::string> {};

TEST_P(CoordsCase, MatchesEagerModel) {
  auto c = fixtures::load(GetParam());
  const int64_t nf = c["energy"].numel();
  const int64_t n = c["atype"].numel();
  auto coords = c["coords"].reshape({nf, n, 3});
  at::Tensor cell = c.count("cell") ? c["cell"].reshape({nf, 3, 3}) : at::Tensor();
  auto r = pot().compute(coords, cell, c["atype"]);
  fixtures::expect_outputs_close(r, c);
  EXPECT_EQ(r.force.sizes(), (at::IntArrayRef{nf, n, 3}));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CoordsCase,
                         ::testing::Values("one_atom", "two_atoms", "water192", "triclinic", "thin_cell", "cluster",
                                           "two_frames"));

// Chunks of a few centers (a tiny memory budget) == the eager model: water192 and two frames.
TEST_P(CoordsCase, ChunkedRunMatchesEagerModel) {
  static dpgraph::DeepPot chunked(fixtures::path("model.pt2"), "", /*memory_budget=*/1);
  auto c = fixtures::load(GetParam());
  const int64_t nf = c["energy"].numel();
  const int64_t n = c["atype"].numel();
  at::Tensor cell = c.count("cell") ? c["cell"].reshape({nf, 3, 3}) : at::Tensor();
  auto r = chunked.compute(c["coords"].reshape({nf, n, 3}), cell, c["atype"]);
  fixtures::expect_outputs_close(r, c);
}

TEST(Chunking, PlanCoversEveryOwnedNodeOnceDegreeSorted) {
  auto c = fixtures::load("water192");
  auto g = dpgraph::build_graph(c["coords"].reshape({1, -1, 3}), c["atype"], c["cell"].reshape({1, 3, 3}),
                                {true, true, true}, 4.0, at::kDouble);
  const int64_t n = g.n_nodes();
  auto deg_t = at::bincount(g.edge_index[1].masked_select(g.edge_mask), {}, n);
  const int64_t max_edges = 3 * deg_t.max().item<int64_t>();
  for (bool first_type : {false, true}) {
    auto plans = dpgraph::plan_chunks(g, max_edges, first_type);
    std::vector<int> seen(n, 0);
    for (const auto& p : plans) {
      int64_t edges = 0;
      for (int64_t k : p.centers) ++seen[k], edges += deg_t[k].item<int64_t>();
      if (!first_type) EXPECT_LE(edges, max_edges);
      if (first_type) EXPECT_EQ(c["atype"][p.centers.front()].item<int64_t>(), c["atype"][0].item<int64_t>());
    }
    for (int64_t k = 0; k < n; ++k) EXPECT_EQ(seen[k], 1) << "node " << k;
    EXPECT_GE(plans.size(), 30u);
  }
}

TEST(DeepPot, VectorApiMatchesTensorApi) {
  auto c = fixtures::load("triclinic");
  std::vector<double> coord(c["coords"].data_ptr<double>(), c["coords"].data_ptr<double>() + c["coords"].numel());
  std::vector<double> box(c["cell"].data_ptr<double>(), c["cell"].data_ptr<double>() + 9);
  double e = 0;
  std::vector<double> f, v, ae, av;
  pot().compute(e, f, v, ae, av, coord, fixtures::ints(c["atype"]), box);
  EXPECT_NEAR(e, c["energy"][0].item<double>(), 1e-10 * std::abs(e));
  fixtures::expect_close(at::tensor(f), c["force"], "force");
  fixtures::expect_close(at::tensor(av), c["atom_virial"], "atom_virial");
}

TEST(DeepPot, ModelInfo) {
  EXPECT_EQ(pot().type_map(), (std::vector<std::string>{"O", "H", "C"}));
  EXPECT_EQ(pot().ntypes(), 3);
  EXPECT_DOUBLE_EQ(pot().rcut(), 4.0);
  EXPECT_EQ(pot().info().dtype, at::kDouble);
  EXPECT_EQ(pot().type_indices({"H", "C", "H"}), (std::vector<int>{1, 2, 1}));
}

TEST(DeepPot, UnknownTypeNameIsRefused) {
  try {
    pot().type_indices({"O", "Xe"});
    FAIL() << "no exception";
  } catch (const dpgraph::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'Xe' is not in the model's type map (O, H, C)"), std::string::npos)
        << e.what();
  }
}

TEST(DeepPot, BadInputsAreRefused) {
  auto coords = at::rand({1, 4, 3}, at::kDouble) * 5;
  auto cell = at::eye(3, at::kDouble).unsqueeze(0) * 9;
  auto types = at::tensor(std::vector<int64_t>{0, 1, 2, 3});
  EXPECT_THROW(pot().compute(coords, cell, types), dpgraph::Error);  // type 3 >= ntypes
  types = at::tensor(std::vector<int64_t>{0, 1, 2, 0});
  auto nan = coords.clone();
  nan[0][2][1] = std::nan("");
  EXPECT_THROW(pot().compute(nan, cell, types), dpgraph::Error);
  auto overlap = coords.clone();
  overlap[0][3] = overlap[0][1];
  EXPECT_THROW(pot().compute(overlap, cell, types), dpgraph::Error);
  EXPECT_THROW(pot().compute(coords, at::zeros({1, 3, 3}, at::kDouble), types), dpgraph::Error);  // singular cell
  std::vector<double> e3(9, 0.0), f, v;
  double e;
  EXPECT_THROW(pot().compute(e, f, v, std::vector<double>(5, 0.0), {0, 1}, {}), dpgraph::Error);
}

}  // namespace
