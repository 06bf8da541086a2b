// Model deviation of a committee of models, in deepmd-kit's model_devi.out
// format: step, max/min/avg virial deviation, max/min/avg force deviation
// [, per-atom force deviation ordered by atom ID when `atomic`].
//
// Force deviation of atom i: sqrt(mean_m |F_m,i - <F_i>|^2), optionally
// divided by (|<F_i>| + eps) ("relative"). Virial deviation: per component
// the standard deviation over models of the global virial, divided by the
// number of atoms; max/min/avg over the 9 components.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "lmptype.h"

namespace dpgraph_lammps {

class DeviationWriter {
 public:
  ~DeviationWriter() { close(); }
  /// Set the file and options; rank 0 checks that `path` can be written (throws
  /// std::runtime_error if not) but neither creates nor truncates it: that
  /// happens at the first write(), so an input that fails before its first
  /// step leaves an existing file as it was. Collective over `world`.
  void configure(const std::string &path, bool atomic, bool relative, double eps, MPI_Comm world);
  void close();
  bool active() const { return active_; }

  /// forces[m]: (n * 3) forces of model m on this rank's owned atoms; tags:
  /// their atom IDs; virials[m]: this rank's part of model m's global virial.
  /// Collective over `world`.
  void write(LAMMPS_NS::bigint step, const std::vector<std::vector<double>> &forces,
             const std::vector<LAMMPS_NS::tagint> &tags, const std::vector<std::array<double, 9>> &virials,
             LAMMPS_NS::bigint natoms);

 private:
  void open_file();  // rank 0 creates/truncates path_ and writes the header; collective
  FILE *fp_ = nullptr;
  std::string path_;
  bool opened_ = false;
  bool active_ = false, atomic_ = false, relative_ = false;
  double eps_ = 0.0;
  MPI_Comm world_ = MPI_COMM_NULL;
  int me_ = 0;
};

}  // namespace dpgraph_lammps
