// A message-passing model (sezm, receptive field 2 rcut) through the C++ runtime:
// DeepPot::compute on a periodic water box, and DeepPot::compute_nlist on the
// MD-style lists of two ranks (ghosts out to receptive field + skin as nodes,
// ghost centres with their own edges, skin pairs) == the periodic eager model.
#include "dpgraph/deep_pot.h"

#include "fixtures.h"

namespace {

dpgraph::DeepPot& pot() {
  static dpgraph::DeepPot dp(fixtures::path("equivariant.pt2"));
  return dp;
}

TEST(Equivariant, MetadataRecordsTheReceptiveField) {
  auto c = fixtures::load("equivariant_ranks");
  EXPECT_DOUBLE_EQ(pot().info().receptive_field, c["receptive_field"][0].item<double>());
  EXPECT_DOUBLE_EQ(pot().info().receptive_field, 2 * pot().rcut());
}

TEST(Equivariant, PeriodicMatchesEager) {
  auto c = fixtures::load("equivariant_water");
  const int64_t n = c["atype"].numel();
  auto r = pot().compute(c["coords"].reshape({1, n, 3}), c["cell"].reshape({1, 3, 3}), c["atype"]);
  fixtures::expect_outputs_close(r, c);
}

TEST(Equivariant, TwoRanksWithGhostCentresMatchPeriodic) {
  auto c = fixtures::load("equivariant_ranks");
  const int64_t n = c["force"].numel() / 3;
  double energy = 0.0;
  auto virial = at::zeros({9}, at::kDouble), force = at::zeros({n, 3}, at::kDouble);
  auto atom_virial = at::zeros({n, 9}, at::kDouble);
  for (const std::string r : {"0", "1"}) {
    auto atype = fixtures::ints(c["atype" + r]), ilist = fixtures::ints(c["ilist" + r]);
    auto neighbors = fixtures::ints(c["neighbors" + r]), off = fixtures::ints(c["offsets" + r]);
    const int nlocal = static_cast<int>(c["nlocal" + r][0].item<int64_t>()), nall = static_cast<int>(atype.size());
    ASSERT_GT(static_cast<int>(ilist.size()), nlocal);  // ghost centres
    ASSERT_LT(static_cast<int>(ilist.size()), nall);    // and ghosts that are nodes only
    const dpgraph::NeighborList list{static_cast<int>(ilist.size()), ilist.data(), off.data(), neighbors.data()};
    auto x = c["x" + r].contiguous();
    auto o = pot().compute_nlist(x.data_ptr<double>(), atype.data(), nlocal, nall, list, nullptr, true, 0);
    EXPECT_EQ(o.force.size(0), nall);
    energy += o.energy.sum().item<double>();
    virial += o.virial.reshape({9});
    auto owner = c["owner" + r];
    force.index_add_(0, owner, o.force.reshape({nall, 3}));
    atom_virial.index_add_(0, owner, o.atom_virial.reshape({nall, 9}));
  }
  fixtures::expect_close(at::tensor({energy}, at::kDouble), c["energy"], "summed owned energies");
  fixtures::expect_close(virial, c["virial"], "summed virials");
  fixtures::expect_close(force, c["force"], "ghost forces folded onto owners");
  fixtures::expect_close(atom_virial, c["atom_virial"], "ghost atom virials folded onto owners");
}

}  // namespace
