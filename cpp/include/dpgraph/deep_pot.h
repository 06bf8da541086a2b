// dpgraph::DeepPot: coordinates in, energy / forces / virials out.
//
// Builds the NeighborGraph on the model's device (from coordinates + cell, or
// from an MD engine's neighbor list), runs the Model and returns float64
// results on the CPU. Units: Å, eV, eV/Å. Virials are row-major 3x3
// (xx xy xz yx yy yz zx zy zz) with the LAMMPS sign (positive = repulsive).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dpgraph/chunked_run.h"
#include "dpgraph/error.h"
#include "dpgraph/graph_builder.h"
#include "dpgraph/model.h"

namespace dpgraph {

/// Per-frame results (CPU, float64).
struct Result {
  at::Tensor energy;       ///< (nf,)
  at::Tensor force;        ///< (nf, n, 3)
  at::Tensor virial;       ///< (nf, 9)
  at::Tensor atom_energy;  ///< (nf, n)
  at::Tensor atom_virial;  ///< (nf, n, 9)
};

/// Thread safety: one instance may be shared by several threads; calls are
/// serialized by an internal mutex (the neighbor-list topology cache and the
/// timings are per instance). For parallel evaluation use one instance per thread.
class DeepPot {
 public:
  /// Load a `.pt2`; device "" = the package's own, else "cpu", "cuda", "cuda:K".
  /// memory_budget: bytes of model activations per call. A local model's graph
  /// that needs more is evaluated in chunks of centers (same numbers); <= 0 = one call.
  explicit DeepPot(const std::string& model_file, const std::string& device = "",
                   int64_t memory_budget = kDefaultMemoryBudget);

  /// One or more frames.
  /// coords : (nf, n, 3) or (n, 3), Å
  /// cell   : (nf, 3, 3), (3, 3), (nf, 9); an undefined tensor = open boundaries
  /// atype  : (n,) or (nf, n) model type indices
  Result compute(const at::Tensor& coords, const at::Tensor& cell, const at::Tensor& atype,
                 std::array<bool, 3> pbc = {true, true, true});

  /// deepmd-kit style, one frame. coord (n*3), atype (n), box (9) or empty for
  /// open boundaries; force (n*3), virial (9).
  void compute(double& energy, std::vector<double>& force, std::vector<double>& virial,
               const std::vector<double>& coord, const std::vector<int>& atype, const std::vector<double>& box);
  /// As above plus atom_energy (n) and atom_virial (n*9).
  void compute(double& energy, std::vector<double>& force, std::vector<double>& virial,
               std::vector<double>& atom_energy, std::vector<double>& atom_virial, const std::vector<double>& coord,
               const std::vector<int>& atype, const std::vector<double>& box);

  /// From an MD engine's neighbor list (see NeighborListGraph::build). Returns
  /// per-node outputs (CPU, float64): energy (1,), atom_energy (nodes,),
  /// force (nodes, 3), virial (1, 9), atom_virial (nodes, 9); nodes = nlocal
  /// when ghosts are folded, nall when they are kept as nodes.
  Outputs compute_nlist(const double* x, const int* atype, int nlocal, int nall, const NeighborList& list,
                        const int* mapping, bool ghosts_as_nodes, int ago);

  /// Model type index of each name; throws naming an unknown name and the model's types.
  std::vector<int> type_indices(const std::vector<std::string>& names) const;

  const std::vector<std::string>& type_map() const { return model_->type_map(); }
  int64_t ntypes() const { return model_->ntypes(); }
  double rcut() const { return model_->rcut(); }
  Model& model() { return *model_; }
  const ModelInfo& info() const { return model_->info(); }
  int64_t memory_budget() const { return memory_budget_; }
  void set_memory_budget(int64_t bytes) { memory_budget_ = bytes; }

  /// The topology cache of compute_nlist (for diagnostics).
  const NeighborListGraph& nlist_graph() const { return nlist_; }

  /// Wall time spent so far building graphs and running the model (s).
  struct Timing {
    double graph = 0.0, model = 0.0;
  };
  const Timing& timing() const { return timing_; }
  void reset_timing() { timing_ = Timing(); }

 private:
  std::unique_ptr<Model> model_;
  NeighborListGraph nlist_;
  Timing timing_;
  int64_t memory_budget_;
  std::mutex mutex_;
};

}  // namespace dpgraph
