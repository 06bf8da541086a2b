// Where AOTInductor extracts a package while pair_style dpgraph loads it.
//
// torch's AOTIModelPackageLoader unpacks every .pt2 into a fresh
// $TMPDIR/aotinductor_XXXXXX and removes it in its destructor, which never
// runs when LAMMPS stops on an error (lmp exits without deleting the LAMMPS
// instance): each failed run used to leave 2.6 MB per model per rank behind.
// Models are therefore loaded with TMPDIR pointing at a private directory of
// this process, $TMPDIR/dpgraph-lmp-<pid>-XXXXXX, which is
//  * cleared of what a CPU model unpacked right after it is loaded (the loader has mapped the
//    shared library and read the weights; nothing is read from disk later),
//  * removed at exit (std::atexit: a LAMMPS ERROR ends lmp through exit()), and
//  * swept at the next start if its process ended without exit() (MPI_Abort
//    after an error on one rank, a signal).
#pragma once

#include <string>
#include <vector>

namespace dpgraph_lammps {

/// This process's private scratch directory (created on first use); throws std::runtime_error.
const std::string &scratch_dir();

/// Names of the entries of scratch_dir() now.
std::vector<std::string> scratch_entries();

/// Remove the entries of scratch_dir() that are not in `keep` (what one model load unpacked).
void remove_scratch_entries_except(const std::vector<std::string> &keep);

/// Sets TMPDIR to scratch_dir() for its lifetime (model loading), then restores it.
class ScratchTmpdir {
 public:
  ScratchTmpdir();
  ~ScratchTmpdir();
  ScratchTmpdir(const ScratchTmpdir &) = delete;
  ScratchTmpdir &operator=(const ScratchTmpdir &) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

}  // namespace dpgraph_lammps
