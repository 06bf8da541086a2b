// pair_style dpgraph: a dpgraph `.pt2` model as a LAMMPS pair style.
//
//   pair_style dpgraph model.pt2 [model2.pt2 ...] [out_file model_devi.out] [out_freq 10] [atomic] [relative eps]
//                      [memory MB]
//   pair_coeff * * O H            (LAMMPS type i -> model type name; NULL = not handled here)
//
// One rank: periodic images (ghosts) are folded onto their owners (for a
// message-passing model too: the folded graph is the periodic graph). Several
// ranks: ghosts are extra graph nodes; their forces and per-atom virials are
// reverse-communicated by LAMMPS (newton pair on). A message-passing model
// (metadata receptive_field > rcut) gets ghosts out to receptive_field + skin
// and a ghost neighbor list (cutoff rcut); ghosts that can come within
// receptive_field - rcut of an owned atom are centres. The graph topology is
// cached between neighbor-list rebuilds; only coordinates are copied per step.
// With several models the first drives the dynamics and the others give the
// model deviation, written every out_freq steps in deepmd-kit's model_devi
// format.
#ifdef PAIR_CLASS
// clang-format off
PairStyle(dpgraph, PairDPGraph);
// clang-format on
#else

#ifndef LMP_PAIR_DPGRAPH_H
#define LMP_PAIR_DPGRAPH_H

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dpgraph/deep_pot.h"
#include "model_deviation.h"
#include "pair.h"
#include "units.h"

namespace LAMMPS_NS {

class PairDPGraph : public Pair {
 public:
  PairDPGraph(class LAMMPS *);
  ~PairDPGraph() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  void setup() override;
  void finish() override;
  double init_one(int, int) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 private:
  void allocate();
  void set_threads();
  void check_skin();  // refuse (warn) a neighbor skin absurd (large) for the model's cutoff
  void rebuild_selection();  // on neighbor-list rebuilds: node order, owner map, compacted list
  void gather_step();         // every step: coordinates (Å) and model types of the nodes
  double distance_to_subdomain(const double *x) const;  // lower bound, LAMMPS length units
  void write_deviation(const std::vector<dpgraph::Outputs> &outs);

  std::vector<std::unique_ptr<dpgraph::DeepPot>> models_;
  std::vector<std::string> model_files_;
  std::vector<int> model_type_;  // LAMMPS type (1-based) -> model type, -1 = NULL
  dpgraph_lammps::UnitConversion units_;
  double rcut_ = 0.0;       // Å
  double receptive_ = 0.0;  // Å
  bool multi_rank_ = false;

  // nodes of the graph: LAMMPS atom index of each node (owned first, then ghosts)
  std::vector<int> node_atom_, atom_node_;
  int n_owned_ = 0, n_nodes_ = 0, n_ext_ = 0, n_ghost_centres_ = 0;
  std::vector<double> x_;            // (n_ext, 3) Å
  std::vector<int> types_, owner_;   // (n_ext,) model types, owner node of each extended atom
  std::vector<std::pair<tagint, int>> tag_node_;  // (atom ID, node) of the owned nodes, sorted
  // the neighbor list in node numbering, CSR (what libdpgraph reads): the neighbors of
  // centre ilist_[c] are neigh_[offsets_[c] .. offsets_[c + 1])
  std::vector<int> ilist_, neigh_, offsets_;

  dpgraph_lammps::DeviationWriter deviation_;
  std::vector<double> comm_forces_;  // (nmax, 3 * nmodels) for the reverse communication
  int comm_width_ = 0;
  int out_freq_ = 10;
  double prep_time_ = 0.0;  // s, node selection and coordinate gathering
};

}  // namespace LAMMPS_NS

#endif
#endif
