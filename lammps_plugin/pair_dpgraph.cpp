// pair_style dpgraph (see pair_dpgraph.h). House style of pair_lj_cut.cpp:
// settings() parses the style line, coeff() the type mapping, init_style()
// requests the neighbor list, compute() evaluates.
#include "pair_dpgraph.h"

#include <ATen/Parallel.h>
#include <dpgraph/allocator.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "scratch_dir.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

using namespace LAMMPS_NS;

namespace {
std::string joined(const std::vector<std::string> &v) {
  std::string s;
  for (const auto &x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}
}  // namespace

PairDPGraph::PairDPGraph(LAMMPS *lmp) : Pair(lmp) {
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_AVAIL;
  unit_convert_flag = utils::NOCONVERT;
  dpgraph::tune_allocator();  // MD evaluates same-size graphs every step: keep freed memory in the heap
}

PairDPGraph::~PairDPGraph() {
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairDPGraph::allocate() {
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");  // read by Pair::init() whenever ghostneigh is set
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
  model_type_.assign(n, -1);
}

void PairDPGraph::settings(int narg, char **arg) {
  const char *usage =
      "pair_style dpgraph model.pt2 [model2.pt2 ...] [out_file model_devi.out] [out_freq 10] [atomic] "
      "[relative eps] [memory MB]";
  if (narg < 1) error->all(FLERR, "Illegal pair_style dpgraph command: expected {}", usage);
  units_ = dpgraph_lammps::unit_conversion(update->unit_style);
  if (!units_.ok)
    error->all(FLERR,
               "pair_style dpgraph does not support units {}: the model is in eV and Angstrom; use units metal, "
               "real, si, cgs, electron, micro or nano",
               update->unit_style);
  model_files_.clear();
  std::string out_file = "model_devi.out";
  int out_freq = 10;
  bool atomic = false, relative = false, out_given = false;
  double eps = 0.0;
  int64_t memory_budget = dpgraph::kDefaultMemoryBudget;  // activation bytes per model call
  int iarg = 0;
  for (; iarg < narg && std::strcmp(arg[iarg], "out_file") && std::strcmp(arg[iarg], "out_freq") &&
         std::strcmp(arg[iarg], "atomic") && std::strcmp(arg[iarg], "relative") && std::strcmp(arg[iarg], "memory");
       ++iarg)
    model_files_.emplace_back(arg[iarg]);
  while (iarg < narg) {
    const std::string key = arg[iarg];
    if (key == "out_file" && iarg + 1 < narg) {
      out_file = arg[iarg + 1], out_given = true, iarg += 2;
    } else if (key == "out_freq" && iarg + 1 < narg) {
      out_freq = utils::inumeric(FLERR, arg[iarg + 1], false, lmp), iarg += 2;
      if (out_freq < 1) error->all(FLERR, "pair_style dpgraph: out_freq must be >= 1");
    } else if (key == "atomic") {
      atomic = true, ++iarg;
    } else if (key == "relative" && iarg + 1 < narg) {
      relative = true, eps = utils::numeric(FLERR, arg[iarg + 1], false, lmp), iarg += 2;
    } else if (key == "memory" && iarg + 1 < narg) {
      const double mb = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(mb >= 0.0))
        error->all(FLERR, "pair_style dpgraph: memory must be >= 0 MB (0 = one model call per step), got {}", mb);
      memory_budget = static_cast<int64_t>(mb * 1024.0 * 1024.0), iarg += 2;
    } else {
      error->all(FLERR, "Illegal pair_style dpgraph keyword '{}': expected {}", key, usage);
    }
  }
  if (model_files_.empty()) error->all(FLERR, "pair_style dpgraph needs a model file: {}", usage);

  models_.clear();
  for (const auto &file : model_files_) {
    try {
      // AOTInductor extracts the package under TMPDIR: a private directory of this process,
      // emptied once a CPU model is loaded and removed at exit even when LAMMPS stops on an error
      dpgraph_lammps::ScratchTmpdir scratch;
      const auto before = dpgraph_lammps::scratch_entries();
      models_.push_back(std::make_unique<dpgraph::DeepPot>(file, "", memory_budget));
      if (models_.back()->model().device().is_cpu()) dpgraph_lammps::remove_scratch_entries_except(before);
    } catch (const std::exception &e) {
      error->all(FLERR, "pair_style dpgraph: cannot use model {}: {}", file, e.what());
    }
  }
  const auto &first = *models_.front();
  for (size_t m = 1; m < models_.size(); ++m) {
    if (models_[m]->type_map() != first.type_map())
      error->all(FLERR, "pair_style dpgraph: models {} and {} have different type maps ({} vs {}); a committee must share one",
                 model_files_[0], model_files_[m], joined(first.type_map()), joined(models_[m]->type_map()));
    if (models_[m]->rcut() != first.rcut())
      error->all(FLERR, "pair_style dpgraph: models {} and {} have different cutoffs ({} vs {} Angstrom)",
                 model_files_[0], model_files_[m], first.rcut(), models_[m]->rcut());
  }
  rcut_ = first.rcut();
  receptive_ = first.info().receptive_field;
  for (const auto &m : models_) receptive_ = std::max(receptive_, m->info().receptive_field);
  out_freq_ = out_freq;
  // the deviation file is only opened (truncated) when its first line is written: an input that
  // fails later (pair_coeff, init, the first step) leaves the previous run's file as it was
  deviation_.close();
  if (models_.size() > 1 || out_given) {
    try {
      deviation_.configure(out_file, atomic, relative, eps, world);
    } catch (const std::exception &e) {
      error->all(FLERR, "pair_style dpgraph: {}", e.what());
    }
  }
  comm_width_ = 3 * static_cast<int>(models_.size());
  comm_reverse = comm_width_;
  if (allocated) std::fill(model_type_.begin(), model_type_.end(), -1);
}

void PairDPGraph::coeff(int narg, char **arg) {
  if (models_.empty()) error->all(FLERR, "pair_coeff before pair_style dpgraph");
  if (!allocated) allocate();
  const auto &tmap = models_.front()->type_map();
  if (narg != 2 + atom->ntypes)
    error->all(FLERR,
               "Incorrect pair_coeff for dpgraph: expected pair_coeff * * followed by {} model type names "
               "(one per LAMMPS atom type, NULL for types handled by another pair style); the model has: {}",
               atom->ntypes, joined(tmap));
  if (std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for dpgraph must start with * *");
  for (int i = 1; i <= atom->ntypes; ++i) {
    const std::string name = arg[1 + i];
    if (name == "NULL") {
      model_type_[i] = -1;
      continue;
    }
    auto it = std::find(tmap.begin(), tmap.end(), name);
    if (it == tmap.end())
      error->all(FLERR, "pair_coeff: type name '{}' (LAMMPS type {}) is not in the model's type map ({}); use one of "
                 "those names or NULL", name, i, joined(tmap));
    model_type_[i] = static_cast<int>(it - tmap.begin());
  }
  int count = 0;
  for (int i = 1; i <= atom->ntypes; ++i)
    for (int j = i; j <= atom->ntypes; ++j)
      if (model_type_[i] >= 0 && model_type_[j] >= 0) setflag[i][j] = 1, ++count;
  if (count == 0) error->all(FLERR, "pair_coeff for dpgraph maps no atom type to the model");
}

void PairDPGraph::init_style() {
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style dpgraph requires newton pair on (forces on ghost atoms are reverse-communicated); "
               "remove 'newton off' from the input");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style dpgraph requires atom IDs (atom_modify id yes)");
  multi_rank_ = comm->nprocs > 1;
  int flags = NeighConst::REQ_FULL;
  ghostneigh = 0;
  if (multi_rank_ && receptive_ > rcut_ * (1 + 1e-12)) {
    // message passing: ghosts out to the receptive field, with their own edges (out to rcut,
    // cutghost in init_one); one rank folds ghosts onto owners, which is exact without this
    flags |= NeighConst::REQ_GHOST;
    ghostneigh = 1;
    comm->cutghostuser = std::max(comm->cutghostuser, receptive_ * units_.length + neighbor->skin);
  }
  neighbor->add_request(this, flags);
  set_threads();
  check_skin();
}

void PairDPGraph::check_skin() {
  // LAMMPS' default skin is 0.001 m (si), 0.1 cm (cgs), 0.1 um (micro): 1e7 or 1e3 Angstrom, with
  // neighbor lists of (rcut + skin)^3 / rcut^3 times the pairs (no memory is that large)
  const double skin_A = neighbor->skin / units_.length;
  if (!(rcut_ > 0) || skin_A <= rcut_) return;
  const std::string unit = update->unit_style;
  const std::string hint = fmt::format("neighbor {:g} bin", 2.0 * units_.length);
  const double growth = std::pow((rcut_ + skin_A) / rcut_, 3);
  if (skin_A > 10.0 * rcut_)
    error->all(FLERR,
               "pair_style dpgraph: the neighbor skin {:g} (units {}) is {:.4g} Angstrom, {:.3g} times the model "
               "cutoff {:g} Angstrom: neighbor lists would hold {:.3g} times the pairs within the cutoff. LAMMPS' "
               "default skin for units {} is far too large for this model; add the line '{}' (a 2 Angstrom skin) "
               "before pair_style",
               neighbor->skin, unit, skin_A, skin_A / rcut_, rcut_, growth, unit, hint);
  if (comm->me == 0)
    error->warning(FLERR,
                   "pair_style dpgraph: the neighbor skin {:g} (units {}) is {:.4g} Angstrom, larger than the model "
                   "cutoff {:g} Angstrom ({:.3g} times the pairs); '{}' (a 2 Angstrom skin) is usually enough",
                   neighbor->skin, unit, skin_A, rcut_, growth, hint);
}

void PairDPGraph::set_threads() {
  // OMP_NUM_THREADS or -pk omp N set comm->nthreads; under MPI default to one thread per rank
  const char *env = std::getenv("OMP_NUM_THREADS");
  int n = 0;
  if (comm->nthreads > 1 || env) n = comm->nthreads;
  else if (comm->nprocs > 1) n = 1;
  if (n > 0) at::set_num_threads(n);
}

double PairDPGraph::init_one(int i, int j) {
  // cutghost: the cutoff of the neighbor lists of ghost centres. A ghost needs its edges out to
  // rcut (the model's), not out to the receptive field: the ghosts themselves reach that far
  // (comm->cutghostuser). LAMMPS' bin stencils only cover the largest pair cutoff + skin.
  cutghost[i][j] = cutghost[j][i] = rcut_ * units_.length;
  return rcut_ * units_.length;
}

double PairDPGraph::distance_to_subdomain(const double *xi) const {
  // a lower bound of the distance (LAMMPS length units) from xi to this rank's sub-domain:
  // exact for an orthogonal box; for a triclinic one the largest distance to the slabs
  // between the sub-domain's opposite faces (the sub-domain is their intersection)
  if (!domain->triclinic) {
    double d2 = 0.0;
    for (int d = 0; d < 3; ++d) {
      const double out = std::max({domain->sublo[d] - xi[d], xi[d] - domain->subhi[d], 0.0});
      d2 += out * out;
    }
    return std::sqrt(d2);
  }
  double lamda[3];
  domain->x2lamda(const_cast<double *>(xi), lamda);
  const double *hi = domain->h_inv;  // lamda = h_inv (x - boxlo); Voigt order xx yy zz yz xz xy
  const double grad[3] = {std::sqrt(hi[0] * hi[0] + hi[5] * hi[5] + hi[4] * hi[4]),
                          std::sqrt(hi[1] * hi[1] + hi[3] * hi[3]), std::fabs(hi[2])};
  double best = 0.0;
  for (int d = 0; d < 3; ++d) {
    const double out = std::max({domain->sublo_lamda[d] - lamda[d], lamda[d] - domain->subhi_lamda[d], 0.0});
    best = std::max(best, out / grad[d]);
  }
  return best;
}

void PairDPGraph::rebuild_selection() {
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
  const int *type = atom->type;
  atom_node_.assign(nall, -1);
  node_atom_.clear();
  for (int i = 0; i < nall; ++i) {
    if (i == nlocal) n_owned_ = static_cast<int>(node_atom_.size());
    if (model_type_[type[i]] < 0) continue;
    atom_node_[i] = static_cast<int>(node_atom_.size());
    node_atom_.push_back(i);
  }
  if (nall == nlocal) n_owned_ = static_cast<int>(node_atom_.size());
  n_ext_ = static_cast<int>(node_atom_.size());
  n_nodes_ = multi_rank_ ? n_ext_ : n_owned_;

  owner_.assign(n_ext_, -1);
  if (!multi_rank_) {  // fold periodic images onto their owners through the atom IDs
    // (ID, node) of the owned nodes, sorted: O(n log n) and O(n) memory whatever the IDs (up to
    // 2^31 - 1), where a table indexed by ID would cost the largest ID in memory and time
    const tagint *tag = atom->tag;
    tag_node_.resize(n_owned_);
    for (int k = 0; k < n_owned_; ++k) tag_node_[k] = {tag[node_atom_[k]], k};
    std::sort(tag_node_.begin(), tag_node_.end());
    for (int k = 0; k < n_ext_; ++k) {
      const tagint t = tag[node_atom_[k]];
      auto it = std::lower_bound(tag_node_.begin(), tag_node_.end(), std::make_pair(t, INT_MIN));
      owner_[k] = (it != tag_node_.end() && it->first == t) ? it->second : -1;
      if (owner_[k] < 0) error->one(FLERR, "pair_style dpgraph: ghost atom with ID {} has no owned atom on this rank", t);
    }
  }
  // the neighbor list in node numbering, restricted to atoms of the model's types. With
  // message passing, ghosts are centres too, but only those that can be within
  // receptive_field - rcut of an owned atom before the next rebuild (atoms move less than
  // skin / 2 each): the features of farther ghosts never reach an owned atom's energy
  const int inum = list->inum + (ghostneigh ? list->gnum : 0);
  const double ghost_reach = (receptive_ - rcut_) * units_.length + neighbor->skin;
  ilist_.clear();
  neigh_.clear();
  offsets_.assign(1, 0);
  n_ghost_centres_ = 0;
  for (int ii = 0; ii < inum; ++ii) {
    const int i = list->ilist[ii];
    if (atom_node_[i] < 0) continue;
    if (i >= nlocal) {
      if (distance_to_subdomain(atom->x[i]) >= ghost_reach) continue;
      ++n_ghost_centres_;
    }
    ilist_.push_back(atom_node_[i]);
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      if (atom_node_[j] >= 0) neigh_.push_back(atom_node_[j]);
    }
    offsets_.push_back(static_cast<int>(neigh_.size()));
  }
}

void PairDPGraph::gather_step() {
  double **x = atom->x;
  const int *type = atom->type;
  x_.resize(3 * static_cast<size_t>(n_ext_));
  types_.resize(n_ext_);
  const double to_angstrom = 1.0 / units_.length;
  for (int k = 0; k < n_ext_; ++k) {
    const int i = node_atom_[k];
    for (int d = 0; d < 3; ++d) x_[3 * k + d] = x[i][d] * to_angstrom;
    types_[k] = model_type_[type[i]];
  }
}

void PairDPGraph::setup() {
  prep_time_ = 0.0;
  for (auto &m : models_) m->reset_timing();
}

void PairDPGraph::finish() {
  // share of the pair time spent assembling graphs (selection + coordinates + NeighborGraph)
  double mine[3] = {prep_time_, 0.0, 0.0}, all[3];
  for (auto &m : models_) mine[1] += m->timing().graph, mine[2] += m->timing().model;
  MPI_Reduce(mine, all, 3, MPI_DOUBLE, MPI_MAX, 0, world);
  if (ghostneigh) {
    // message passing: graph sizes at the last rebuild, summed over ranks
    bigint mine_n[3] = {n_ext_ - n_owned_, n_ghost_centres_, static_cast<bigint>(neigh_.size())}, all_n[3];
    MPI_Reduce(mine_n, all_n, 3, MPI_LMP_BIGINT, MPI_SUM, 0, world);
    if (comm->me == 0)
      utils::logmesg(lmp, "pair dpgraph message passing (receptive field {} A): {} ghost nodes, {} of them centres, "
                     "{} listed pairs (all ranks, last rebuild)\n", receptive_, all_n[0], all_n[1], all_n[2]);
  }
  if (comm->me == 0 && all[2] > 0)
    utils::logmesg(lmp, "pair dpgraph timing (max over ranks): graph assembly {:.4g} s ({:.1f}% of pair), model {:.4g} s\n",
                   all[0] + all[1], 100.0 * (all[0] + all[1]) / (all[0] + all[1] + all[2]), all[2]);
}

void PairDPGraph::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  const auto t_prep = std::chrono::steady_clock::now();
  const int nall = atom->nlocal + atom->nghost;
  const bool rebuilt = neighbor->ago == 0 || static_cast<int>(atom_node_.size()) != nall;
  if (rebuilt) rebuild_selection();
  gather_step();
  prep_time_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_prep).count();
  const bool deviation = deviation_.active() && update->ntimestep % out_freq_ == 0;
  const dpgraph::NeighborList nl{static_cast<int>(ilist_.size()), ilist_.data(), offsets_.data(), neigh_.data()};
  std::vector<dpgraph::Outputs> outs;
  for (size_t m = 0; m < (deviation ? models_.size() : 1); ++m) {
    // the committee members run every out_freq steps only: their topology cache may be stale
    const int ago = (m == 0 && !rebuilt) ? neighbor->ago : 0;
    try {
      outs.push_back(models_[m]->compute_nlist(x_.data(), types_.data(), n_owned_, n_ext_, nl,
                                               multi_rank_ ? nullptr : owner_.data(), multi_rank_, ago));
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style dpgraph (step {}): {}", update->ntimestep, e.what());
    }
  }
  const double ec = units_.energy, fc = units_.energy / units_.length;
  const auto &o = outs.front();
  const double *F = o.force.data_ptr<double>();
  double **f = atom->f;
  for (int k = 0; k < n_nodes_; ++k)
    for (int d = 0; d < 3; ++d) f[node_atom_[k]][d] += F[3 * k + d] * fc;
  if (eflag_global) eng_vdwl += o.energy.item<double>() * ec;
  if (eflag_atom) {
    const double *ae = o.atom_energy.data_ptr<double>();
    for (int k = 0; k < n_owned_; ++k) eatom[node_atom_[k]] += ae[k] * ec;
  }
  // model virial [a][b] (row-major) is LAMMPS' W_ba: xy = [1][0], xz = [2][0], yz = [2][1]
  if (vflag_global) {
    const double *v = o.virial.data_ptr<double>();
    const int idx[6] = {0, 4, 8, 3, 6, 7};
    for (int c = 0; c < 6; ++c) virial[c] += v[idx[c]] * ec;
  }
  if (vflag_atom || cvflag_atom) {
    const double *av = o.atom_virial.data_ptr<double>();
    const int idx6[6] = {0, 4, 8, 3, 6, 7};
    const int idx9[9] = {0, 4, 8, 3, 6, 7, 1, 2, 5};  // xx yy zz xy xz yz yx zx zy
    for (int k = 0; k < n_nodes_; ++k) {
      const int i = node_atom_[k];
      if (vflag_atom)
        for (int c = 0; c < 6; ++c) vatom[i][c] += av[9 * k + idx6[c]] * ec;
      if (cvflag_atom)
        for (int c = 0; c < 9; ++c) cvatom[i][c] += av[9 * k + idx9[c]] * ec;
    }
  }
  if (deviation) write_deviation(outs);
}

void PairDPGraph::write_deviation(const std::vector<dpgraph::Outputs> &outs) {
  const int nm = static_cast<int>(outs.size());
  const double ec = units_.energy, fc = units_.energy / units_.length;
  // every model's force on every atom; ghost contributions go home by reverse communication
  comm_forces_.assign(static_cast<size_t>(atom->nmax) * comm_width_, 0.0);
  for (int m = 0; m < nm; ++m) {
    const double *F = outs[m].force.data_ptr<double>();
    for (int k = 0; k < n_nodes_; ++k)
      for (int d = 0; d < 3; ++d) comm_forces_[static_cast<size_t>(node_atom_[k]) * comm_width_ + 3 * m + d] = F[3 * k + d] * fc;
  }
  if (multi_rank_) comm->reverse_comm(this);
  std::vector<std::vector<double>> forces(nm);
  std::vector<tagint> tags;
  for (int k = 0; k < n_owned_; ++k) {
    const int i = node_atom_[k];
    tags.push_back(atom->tag[i]);
    for (int m = 0; m < nm; ++m)
      for (int d = 0; d < 3; ++d) forces[m].push_back(comm_forces_[static_cast<size_t>(i) * comm_width_ + 3 * m + d]);
  }
  std::vector<std::array<double, 9>> virials(nm);
  for (int m = 0; m < nm; ++m) {
    const double *v = outs[m].virial.data_ptr<double>();
    for (int c = 0; c < 9; ++c) virials[m][c] = v[c] * ec;
  }
  bigint n_local = tags.size(), n_total = 0;
  MPI_Allreduce(&n_local, &n_total, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  deviation_.write(update->ntimestep, forces, tags, virials, n_total);
}

int PairDPGraph::pack_reverse_comm(int n, int first, double *buf) {
  int m = 0;
  for (int i = first; i < first + n; ++i)
    for (int c = 0; c < comm_width_; ++c) buf[m++] = comm_forces_[static_cast<size_t>(i) * comm_width_ + c];
  return m;
}

void PairDPGraph::unpack_reverse_comm(int n, int *list, double *buf) {
  int m = 0;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < comm_width_; ++c) comm_forces_[static_cast<size_t>(list[i]) * comm_width_ + c] += buf[m++];
}
