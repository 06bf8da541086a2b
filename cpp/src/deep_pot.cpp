#include "dpgraph/deep_pot.h"

#include <algorithm>
#include <chrono>

#include "dpgraph/error.h"

namespace dpgraph {
namespace {

Outputs to_host_double(const Outputs& o) {
  auto h = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble).contiguous(); };
  return {h(o.energy), h(o.atom_energy), h(o.force), h(o.virial), h(o.atom_virial)};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

DeepPot::DeepPot(const std::string& model_file, const std::string& device, int64_t memory_budget)
    : model_(std::make_unique<Model>(model_file, device)),
      nlist_(model_->rcut(), model_->dtype(), model_->device()),
      memory_budget_(memory_budget) {}

Result DeepPot::compute(const at::Tensor& coords_in, const at::Tensor& cell, const at::Tensor& atype_in,
                        std::array<bool, 3> pbc) {
  auto coords = coords_in.dim() == 2 ? coords_in.unsqueeze(0) : coords_in;
  if (coords.dim() != 3 || coords.size(2) != 3)
    throw Error("coordinates must be (natoms, 3) or (nframes, natoms, 3) in Å");
  const int64_t nf = coords.size(0), n = coords.size(1);
  const auto dev = model_->device();
  auto atype = atype_in.to(dev, at::kLong);
  if (n > 0) {
    const int64_t lo = atype.min().item<int64_t>(), hi = atype.max().item<int64_t>();
    if (lo < 0 || hi >= ntypes())
      throw Error("atom type index " + std::to_string(lo < 0 ? lo : hi) + " is outside the model's types [0, " +
                  std::to_string(ntypes()) + ") = " + joined(type_map()));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto t0 = std::chrono::steady_clock::now();
  auto graph = build_graph(coords.to(dev), atype, cell.defined() ? cell.to(dev) : cell, pbc, rcut(),
                           model_->dtype());
  timing_.graph += seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  auto out = to_host_double(run_within_budget(*model_, graph, memory_budget_));
  timing_.model += seconds_since(t0);
  return {out.energy, out.force.reshape({nf, n, 3}), out.virial, out.atom_energy.reshape({nf, n}),
          out.atom_virial.reshape({nf, n, 9})};
}

void DeepPot::compute(double& energy, std::vector<double>& force, std::vector<double>& virial,
                      std::vector<double>& atom_energy, std::vector<double>& atom_virial,
                      const std::vector<double>& coord, const std::vector<int>& atype, const std::vector<double>& box) {
  const int64_t n = static_cast<int64_t>(atype.size());
  if (static_cast<int64_t>(coord.size()) != 3 * n)
    throw Error("coord has " + std::to_string(coord.size()) + " values but atype has " + std::to_string(n) +
                " atoms (3 coordinates per atom expected)");
  if (!box.empty() && box.size() != 9) throw Error("box must have 9 values (3 lattice vectors as rows) or be empty");
  auto dopt = at::TensorOptions().dtype(at::kDouble);
  auto c = at::tensor(coord, dopt).reshape({1, n, 3});
  auto t = at::tensor(std::vector<int64_t>(atype.begin(), atype.end()), dopt.dtype(at::kLong));
  auto b = box.empty() ? at::Tensor() : at::tensor(box, dopt).reshape({1, 3, 3});
  auto r = compute(c, b, t);
  auto vec = [](const at::Tensor& x) {
    auto y = x.contiguous();
    return std::vector<double>(y.data_ptr<double>(), y.data_ptr<double>() + y.numel());
  };
  energy = r.energy[0].item<double>();
  force = vec(r.force);
  virial = vec(r.virial);
  atom_energy = vec(r.atom_energy);
  atom_virial = vec(r.atom_virial);
}

void DeepPot::compute(double& energy, std::vector<double>& force, std::vector<double>& virial,
                      const std::vector<double>& coord, const std::vector<int>& atype, const std::vector<double>& box) {
  std::vector<double> ae, av;
  compute(energy, force, virial, ae, av, coord, atype, box);
}

Outputs DeepPot::compute_nlist(const double* x, const int* atype, int nlocal, int nall, const NeighborList& list,
                               const int* mapping, bool ghosts_as_nodes, int ago) {
  if (nlocal < 0 || nall < nlocal)
    throw Error("need 0 <= nlocal <= nall atoms, got nlocal = " + std::to_string(nlocal) + ", nall = " +
                std::to_string(nall));
  const int n_nodes = ghosts_as_nodes ? nall : nlocal;
  for (int k = 0; k < n_nodes; ++k)
    if (atype[k] < 0 || atype[k] >= ntypes())
      throw Error("atom " + std::to_string(k) + " has type index " + std::to_string(atype[k]) +
                  " outside the model's types [0, " + std::to_string(ntypes()) + ") = " + joined(type_map()));
  std::lock_guard<std::mutex> lock(mutex_);
  auto t0 = std::chrono::steady_clock::now();
  const auto& graph = nlist_.build(x, atype, nlocal, nall, list, mapping, ghosts_as_nodes, ago);
  graph.validate(ntypes(), model_->dtype());  // overlapping atoms, non-finite coordinates
  timing_.graph += seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  auto out = to_host_double(run_within_budget(*model_, graph, memory_budget_));
  timing_.model += seconds_since(t0);
  return out;
}

std::vector<int> DeepPot::type_indices(const std::vector<std::string>& names) const {
  std::vector<int> out;
  for (const auto& name : names) {
    auto it = std::find(type_map().begin(), type_map().end(), name);
    if (it == type_map().end())
      throw Error("type '" + name + "' is not in the model's type map (" + joined(type_map()) +
                  "); use one of those names");
    out.push_back(static_cast<int>(it - type_map().begin()));
  }
  return out;
}

}  // namespace dpgraph
