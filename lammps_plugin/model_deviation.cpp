#include "model_deviation.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

namespace dpgraph_lammps {

void DeviationWriter::configure(const std::string &path, bool atomic, bool relative, double eps, MPI_Comm world) {
  close();
  world_ = world;
  MPI_Comm_rank(world, &me_);
  path_ = path;
  atomic_ = atomic;
  relative_ = relative;
  eps_ = eps;
  // only check that the file could be written: it is opened (truncated) at the first write
  int ok = 1;
  std::string why;
  if (me_ == 0) {
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) ok = 0, why = path + " is a directory";
    else if (::access(dir.c_str(), W_OK | X_OK) != 0) ok = 0, why = "the directory " + dir + " does not exist or is not writable";
    else if (::access(path.c_str(), F_OK) == 0 && ::access(path.c_str(), W_OK) != 0) ok = 0, why = path + " is read-only";
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, world);
  if (!ok) throw std::runtime_error("cannot write the model deviation file " + path + ": " + why);
  active_ = true;
}

void DeviationWriter::open_file() {
  int ok = 1;
  if (me_ == 0) {
    fp_ = std::fopen(path_.c_str(), "w");
    ok = fp_ != nullptr;
    if (fp_) {
      std::fprintf(fp_, "#%11s%19s%19s%19s%19s%19s%19s%s\n", "step", "max_devi_v", "min_devi_v", "avg_devi_v",
                   "max_devi_f", "min_devi_f", "avg_devi_f", atomic_ ? "  atm_devi_f(N)" : "");
      std::fflush(fp_);
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, world_);
  if (!ok) throw std::runtime_error("cannot open the model deviation file " + path_ + " for writing");
  opened_ = true;
}

void DeviationWriter::close() {
  if (fp_) std::fclose(fp_);
  fp_ = nullptr;
  active_ = opened_ = false;
}

void DeviationWriter::write(LAMMPS_NS::bigint step, const std::vector<std::vector<double>> &forces,
                            const std::vector<LAMMPS_NS::tagint> &tags,
                            const std::vector<std::array<double, 9>> &virials, LAMMPS_NS::bigint natoms) {
  if (!opened_) open_file();  // collective, like the rest of write()
  const size_t nm = forces.size(), n = tags.size();
  // per-atom force deviation on this rank
  std::vector<double> devi(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    double mean[3] = {0, 0, 0};
    for (size_t m = 0; m < nm; ++m)
      for (int d = 0; d < 3; ++d) mean[d] += forces[m][3 * i + d] / nm;
    double s = 0.0;
    for (size_t m = 0; m < nm; ++m)
      for (int d = 0; d < 3; ++d) s += std::pow(forces[m][3 * i + d] - mean[d], 2);
    devi[i] = std::sqrt(s / nm);
    if (relative_) devi[i] /= std::sqrt(mean[0] * mean[0] + mean[1] * mean[1] + mean[2] * mean[2]) + eps_;
  }
  double lmax = -std::numeric_limits<double>::infinity(), lmin = std::numeric_limits<double>::infinity(), lsum = 0;
  for (double d : devi) lmax = std::max(lmax, d), lmin = std::min(lmin, d), lsum += d;
  double fmax, fmin, fsum;
  MPI_Reduce(&lmax, &fmax, 1, MPI_DOUBLE, MPI_MAX, 0, world_);
  MPI_Reduce(&lmin, &fmin, 1, MPI_DOUBLE, MPI_MIN, 0, world_);
  MPI_Reduce(&lsum, &fsum, 1, MPI_DOUBLE, MPI_SUM, 0, world_);

  // virial deviation from the global virials
  std::vector<double> local(9 * nm), global(9 * nm);
  for (size_t m = 0; m < nm; ++m) std::copy(virials[m].begin(), virials[m].end(), local.begin() + 9 * m);
  MPI_Reduce(local.data(), global.data(), static_cast<int>(9 * nm), MPI_DOUBLE, MPI_SUM, 0, world_);

  // per-atom deviations gathered on rank 0, ordered by atom ID
  std::vector<std::pair<double, double>> all;  // (tag, devi)
  if (atomic_) {
    int nlocal = static_cast<int>(n), nprocs;
    MPI_Comm_size(world_, &nprocs);
    std::vector<int> counts(nprocs), displs(nprocs);
    MPI_Gather(&nlocal, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world_);
    std::vector<double> mine(2 * n), gathered;
    for (size_t i = 0; i < n; ++i) mine[2 * i] = static_cast<double>(tags[i]), mine[2 * i + 1] = devi[i];
    int total = 0;
    for (int p = 0; p < nprocs; ++p) counts[p] *= 2, displs[p] = total, total += counts[p];
    if (me_ == 0) gathered.resize(total);
    MPI_Gatherv(mine.data(), 2 * nlocal, MPI_DOUBLE, gathered.data(), counts.data(), displs.data(), MPI_DOUBLE, 0,
                world_);
    for (int k = 0; k + 1 < total; k += 2) all.emplace_back(gathered[k], gathered[k + 1]);
    std::sort(all.begin(), all.end());
  }
  if (me_ != 0 || !fp_) return;
  double vmax = 0, vmin = std::numeric_limits<double>::infinity(), vsum = 0;
  for (int c = 0; c < 9; ++c) {
    double mean = 0, s = 0;
    for (size_t m = 0; m < nm; ++m) mean += global[9 * m + c] / nm;
    for (size_t m = 0; m < nm; ++m) s += std::pow(global[9 * m + c] - mean, 2);
    const double sd = std::sqrt(s / nm) / static_cast<double>(natoms);
    vmax = std::max(vmax, sd), vmin = std::min(vmin, sd), vsum += sd;
  }
  if (natoms == 0) fmax = fmin = fsum = 0.0;
  std::fprintf(fp_, "%12lld %18.10e %18.10e %18.10e %18.10e %18.10e %18.10e", static_cast<long long>(step), vmax,
               vmin, vsum / 9, fmax, fmin, natoms ? fsum / natoms : 0.0);
  for (const auto &tv : all) std::fprintf(fp_, " %18.10e", tv.second);
  std::fprintf(fp_, "\n");
  std::fflush(fp_);
}

}  // namespace dpgraph_lammps
