// dpgraph::Model: one exported `.pt2` loaded with torch's AOTInductor package
// loader, with its metadata checked first and every input validated.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "dpgraph/error.h"
#include "dpgraph/neighbor_graph.h"
#include "dpgraph/package.h"

namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace dpgraph {

/// Outputs of one run, on the model's device and dtype.
struct Outputs {
  at::Tensor energy;       ///< (nf,)   eV, sum over owned nodes of each frame
  at::Tensor atom_energy;  ///< (N,)    eV, 0 on ghost nodes
  at::Tensor force;        ///< (N, 3)  eV/Å, including reaction forces on ghosts
  at::Tensor virial;       ///< (nf, 9) eV, row-major 3x3, sum over edges of W[a][b] = -dE/dedge_vec[a] * edge_vec[b]
  at::Tensor atom_virial;  ///< (N, 9)  eV, each edge's virial attributed to its src node
};

class Model {
 public:
  /// Load `path`; `device` is "cpu", "cuda" or "cuda:K" (empty: the package's
  /// own device). Throws dpgraph::Error when the package cannot run here.
  explicit Model(const std::string& path, const std::string& device = "");
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const { return info_; }
  const std::vector<std::string>& type_map() const { return info_.type_map; }
  int64_t ntypes() const { return static_cast<int64_t>(info_.type_map.size()); }
  double rcut() const { return info_.rcut; }
  at::ScalarType dtype() const { return info_.dtype; }
  at::Device device() const { return device_; }

  /// Run on a graph that lives on device() with edge_vec in dtype(). Inputs
  /// are validated first unless `validate` is false (only for graphs that a
  /// dpgraph builder just produced). A graph with no nodes (an MPI rank that
  /// owns no atoms) returns zeros without running the model.
  Outputs run(const NeighborGraph& graph, bool validate = true);

 private:
  /// One tiny run at load: refuses a package whose compiled graph disagrees with its metadata dtype.
  void probe();

  ModelInfo info_;
  at::Device device_;
  std::shared_ptr<torch::inductor::AOTIModelPackageLoader> loader_;  // from the process-wide pool (loader_pool.h)
  std::vector<int> slot_;  // position in the package outputs of energy, atom_energy, force, virial, atom_virial
};

/// Throw dpgraph::Error when the energy or forces hold NaN or inf (cheap: O(N) on the outputs).
void check_finite(const Outputs& out, const std::string& path);

}  // namespace dpgraph
