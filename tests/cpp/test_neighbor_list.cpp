// DeepPot::compute_nlist: a CSR neighbor list with ghost atoms,
// folded onto owners (one process) or kept as nodes (several MPI ranks), and
// the cached topology (ago > 0) == a fresh build.
#include "dpgraph/deep_pot.h"

#include "fixtures.h"

namespace {

struct Lmp {  // the CSR neighbor list of the fixture (a LAMMPS-like list with ghosts and a skin)
  std::vector<int> ilist, offsets, neighbors, mapping, atype;
  std::vector<double> x, x2;
  int nlocal = 0, nall = 0;

  Lmp() {
    auto c = fixtures::load("nlist");
    nlocal = static_cast<int>(c["nlocal"][0].item<int64_t>());
    atype = fixtures::ints(c["atype"]);
    nall = static_cast<int>(atype.size());
    ilist = fixtures::ints(c["ilist"]);
    neighbors = fixtures::ints(c["neighbors"]);
    mapping = fixtures::ints(c["mapping"]);
    offsets = fixtures::ints(c["offsets"]);
    x.assign(c["x"].data_ptr<double>(), c["x"].data_ptr<double>() + c["x"].numel());
    x2.assign(c["x2"].data_ptr<double>(), c["x2"].data_ptr<double>() + c["x2"].numel());
    expected = std::move(c);
  }
  dpgraph::NeighborList list() const {
    return {static_cast<int>(ilist.size()), ilist.data(), offsets.data(), neighbors.data()};
  }
  std::map<std::string, at::Tensor> expected;
};

void expect_outputs(const dpgraph::Outputs& o, std::map<std::string, at::Tensor>& want, const std::string& prefix,
                    const std::string& tag) {
  fixtures::expect_close(o.energy, want[prefix + "energy" + tag], prefix + "energy" + tag);
  fixtures::expect_close(o.force, want[prefix + "force" + tag], prefix + "force" + tag);
  fixtures::expect_close(o.virial, want[prefix + "virial" + tag], prefix + "virial" + tag);
  fixtures::expect_close(o.atom_energy, want[prefix + "atom_energy" + tag], prefix + "atom_energy" + tag);
  fixtures::expect_close(o.atom_virial, want[prefix + "atom_virial" + tag], prefix + "atom_virial" + tag);
}

TEST(NeighborList, FoldedGhostsMatchEager) {
  Lmp l;
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  auto o = dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), l.mapping.data(), false, 0);
  EXPECT_EQ(o.force.size(0), l.nlocal);
  expect_outputs(o, l.expected, "fold_", "");
}

TEST(NeighborList, GhostsAsNodesMatchEager) {
  Lmp l;
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  auto o = dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), nullptr, true, 0);
  EXPECT_EQ(o.force.size(0), l.nall);
  expect_outputs(o, l.expected, "ghost_", "");
  // ghost forces reverse-communicated onto their owners give the folded forces
  auto owner = at::tensor(std::vector<int64_t>(l.mapping.begin(), l.mapping.end()));
  auto summed = at::zeros({l.nlocal, 3}, at::kDouble).index_add_(0, owner, o.force);
  fixtures::expect_close(summed, l.expected["fold_force"], "ghost forces summed onto owners");
  EXPECT_EQ(o.atom_energy.slice(0, l.nlocal).abs().sum().item<double>(), 0.0);
}

TEST(NeighborList, CachedTopologyMatchesFreshBuild) {
  Lmp l;
  for (bool ghosts : {false, true}) {
    dpgraph::DeepPot dp(fixtures::path("model.pt2"));
    const int* map = ghosts ? nullptr : l.mapping.data();
    dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), map, ghosts, 0);
    EXPECT_EQ(dp.nlist_graph().rebuilds(), 1);
    // atoms moved less than skin / 2: the engine keeps its list (ago = 1)
    auto o = dp.compute_nlist(l.x2.data(), l.atype.data(), l.nlocal, l.nall, l.list(), map, ghosts, 1);
    EXPECT_EQ(dp.nlist_graph().rebuilds(), 1) << "the topology was rebuilt although ago > 0";
    expect_outputs(o, l.expected, ghosts ? "ghost_" : "fold_", "2");
    // and a rebuild gives the same numbers
    auto fresh = dp.compute_nlist(l.x2.data(), l.atype.data(), l.nlocal, l.nall, l.list(), map, ghosts, 0);
    EXPECT_EQ(dp.nlist_graph().rebuilds(), 2);
    expect_outputs(fresh, l.expected, ghosts ? "ghost_" : "fold_", "2");
  }
}

TEST(NeighborList, RankWithNoAtoms) {
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  dpgraph::NeighborList empty{0, nullptr, nullptr, nullptr};
  auto o = dp.compute_nlist(nullptr, nullptr, 0, 0, empty, nullptr, true, 0);
  EXPECT_EQ(o.energy.item<double>(), 0.0);
  EXPECT_EQ(o.force.size(0), 0);
}

TEST(NeighborList, FoldingWithoutMappingIsRefused) {
  Lmp l;
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  EXPECT_THROW(dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), nullptr, false, 0),
               dpgraph::Error);
}

TEST(NeighborList, NanCoordinatesAreRefused) {
  Lmp l;
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  l.x[5] = std::nan("");
  try {
    dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), l.mapping.data(), false, 0);
    FAIL() << "no exception";
  } catch (const dpgraph::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

TEST(NeighborList, DecreasingOffsetsAreRefused) {
  Lmp l;
  dpgraph::DeepPot dp(fixtures::path("model.pt2"));
  ASSERT_GT(l.ilist.size(), 2u);
  std::swap(l.offsets[1], l.offsets[2]);  // a CSR row with a negative length
  try {
    dp.compute_nlist(l.x.data(), l.atype.data(), l.nlocal, l.nall, l.list(), l.mapping.data(), false, 0);
    FAIL() << "no exception";
  } catch (const dpgraph::Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-decreasing"), std::string::npos) << e.what();
  }
}

}  // namespace
