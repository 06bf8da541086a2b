// pybind11 module dpgraph._core: the C++ runtime seen from Python.
//
// Numpy in, numpy out (copies at the boundary; torch tensors are converted by
// the Python wrapper dpgraph.DeepPot). The GIL is released while the model runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dpgraph/deep_pot.h"
#include "dpgraph/error.h"
#include "dpgraph/version.h"

namespace py = pybind11;
using dpgraph::DeepPot;

namespace {

using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

at::Tensor to_tensor(const F64& a) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return at::from_blob(const_cast<double*>(a.data()), shape, at::kDouble).clone();
}

at::Tensor to_tensor(const I64& a) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  return at::from_blob(const_cast<int64_t*>(a.data()), shape, at::kLong).clone();
}

py::array to_numpy(const at::Tensor& t_in) {
  auto t = t_in.to(at::kCPU).contiguous();
  std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
  if (t.scalar_type() == at::kDouble) {
    py::array_t<double> out(shape);
    std::memcpy(out.mutable_data(), t.data_ptr<double>(), t.numel() * sizeof(double));
    return out;
  }
  if (t.scalar_type() == at::kBool) {
    py::array_t<bool> out(shape);
    std::memcpy(out.mutable_data(), t.data_ptr<bool>(), t.numel() * sizeof(bool));
    return out;
  }
  auto l = t.to(at::kLong);
  py::array_t<int64_t> out(shape);
  std::memcpy(out.mutable_data(), l.data_ptr<int64_t>(), l.numel() * sizeof(int64_t));
  return out;
}

std::array<bool, 3> pbc3(const std::vector<bool>& p) {
  if (p.size() == 1) return {p[0], p[0], p[0]};
  if (p.size() != 3) throw dpgraph::Error("pbc must be one bool or three bools (one per lattice vector)");
  return {p[0], p[1], p[2]};
}

py::tuple compute(DeepPot& dp, const F64& coords, const std::optional<F64>& cell, const I64& atype,
                  const std::vector<bool>& pbc) {
  auto c = to_tensor(coords);
  auto t = to_tensor(atype);
  at::Tensor b = cell ? to_tensor(*cell) : at::Tensor();
  dpgraph::Result r;
  {
    py::gil_scoped_release release;
    r = dp.compute(c, b, t, pbc3(pbc));
  }
  return py::make_tuple(to_numpy(r.energy), to_numpy(r.force), to_numpy(r.virial), to_numpy(r.atom_energy),
                        to_numpy(r.atom_virial));
}

// Neighbor list in CSR form: the neighbors of center ilist[ii] are
// neighbors[offsets[ii]:offsets[ii+1]] (indices into the nall atoms).
py::tuple compute_nlist(DeepPot& dp, const F64& x, const I32& atype, int nlocal, const I32& ilist,
                        const I32& offsets, const I32& neighbors, const std::optional<I32>& mapping,
                        bool ghosts_as_nodes, int ago) {
  const int nall = static_cast<int>(atype.size());
  const int inum = static_cast<int>(ilist.size());
  if (x.size() != 3 * static_cast<py::ssize_t>(nall)) throw dpgraph::Error("x must be (nall, 3) with nall = len(atype)");
  if (nlocal < 0 || nlocal > nall) throw dpgraph::Error("need 0 <= nlocal <= nall = len(atype)");
  if (offsets.size() != inum + 1) throw dpgraph::Error("offsets must have len(ilist) + 1 entries");
  if (mapping && mapping->size() != nall) throw dpgraph::Error("mapping must have nall entries");
  if (inum > 0 && offsets.data()[inum] > neighbors.size())
    throw dpgraph::Error("offsets[-1] = " + std::to_string(offsets.data()[inum]) + " is beyond the " +
                         std::to_string(neighbors.size()) + " entries of neighbors");
  const dpgraph::NeighborList list{inum, ilist.data(), offsets.data(), neighbors.data()};
  dpgraph::Outputs o;
  {
    py::gil_scoped_release release;
    o = dp.compute_nlist(x.data(), atype.data(), nlocal, nall, list, mapping ? mapping->data() : nullptr,
                         ghosts_as_nodes, ago);
  }
  return py::make_tuple(to_numpy(o.energy), to_numpy(o.force), to_numpy(o.virial), to_numpy(o.atom_energy),
                        to_numpy(o.atom_virial));
}

py::tuple build_graph(const F64& coords, const I64& atype, const std::optional<F64>& cell,
                      const std::vector<bool>& pbc, double rcut) {
  auto g = dpgraph::build_graph(to_tensor(coords), to_tensor(atype), cell ? to_tensor(*cell) : at::Tensor(),
                                pbc3(pbc), rcut, at::kDouble);
  g.validate();
  return py::make_tuple(to_numpy(g.atype), to_numpy(g.n_node), to_numpy(g.edge_index), to_numpy(g.edge_vec),
                        to_numpy(g.edge_mask));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dpgraph C++ runtime (libdpgraph)";
  m.attr("ABI_VERSION") = dpgraph::kAbiVersion;
  m.attr("TORCH_VERSION") = dpgraph::kTorchVersion;
  py::register_exception<dpgraph::Error>(m, "Error", PyExc_ValueError);

  m.def("cpu_capability", &dpgraph::cpu_capability, "ISA of torch's CPU kernels in this process");
  m.def("read_package_metadata", &dpgraph::read_package_metadata, py::arg("path"),
        "Metadata map of a .pt2, read by the C++ runtime");
  m.def("check_metadata", &dpgraph::check_metadata, py::arg("metadata"), py::arg("path"), py::arg("device") = "",
        py::arg("cpu_isa") = "",
        "Refuse (dpgraph._core.Error) a package this process cannot run; returns its ModelInfo");
  py::class_<dpgraph::ModelInfo>(m, "ModelInfo", "What a checked package says about itself")
      .def_readonly("path", &dpgraph::ModelInfo::path)
      .def_readonly("metadata", &dpgraph::ModelInfo::metadata)
      .def_readonly("type_map", &dpgraph::ModelInfo::type_map)
      .def_readonly("rcut", &dpgraph::ModelInfo::rcut, "Å")
      .def_readonly("receptive_field", &dpgraph::ModelInfo::receptive_field, "Å")
      .def_property_readonly("dtype", [](const dpgraph::ModelInfo& i) { return i.dtype == at::kDouble ? "float64" : "float32"; })
      .def_readonly("device", &dpgraph::ModelInfo::device)
      .def_readonly("cpu_isa", &dpgraph::ModelInfo::cpu_isa)
      .def_readonly("outputs", &dpgraph::ModelInfo::outputs);
  m.def("build_graph", &build_graph, py::arg("coords"), py::arg("atype"), py::arg("cell"), py::arg("pbc"),
        py::arg("rcut"), "C++ cell-list NeighborGraph (float64) as numpy arrays, for tests");

  py::class_<DeepPot>(m, "DeepPot")
      .def(py::init<const std::string&, const std::string&, int64_t>(), py::arg("model_file"), py::arg("device") = "",
           py::arg("memory_budget") = dpgraph::kDefaultMemoryBudget)
      .def_property("memory_budget", &DeepPot::memory_budget, &DeepPot::set_memory_budget,
                    "bytes of model activations per call; larger local graphs run in chunks (<= 0: one call)")
      .def("compute", &compute, py::arg("coords"), py::arg("cell"), py::arg("atype"),
           py::arg("pbc") = std::vector<bool>{true},
           "coords (nf, n, 3) Å, cell (nf, 3, 3)/(nf, 9) or None, atype (n,) or (nf, n) -> energy (nf,), "
           "force (nf, n, 3), virial (nf, 9), atom_energy (nf, n), atom_virial (nf, n, 9)")
      .def("compute_nlist", &compute_nlist, py::arg("x"), py::arg("atype"), py::arg("nlocal"), py::arg("ilist"),
           py::arg("offsets"), py::arg("neighbors"), py::arg("mapping") = py::none(),
           py::arg("ghosts_as_nodes") = false, py::arg("ago") = 0,
           "Run from an MD neighbor list (CSR); per-node outputs")
      .def_property_readonly("type_map", &DeepPot::type_map)
      .def_property_readonly("rcut", &DeepPot::rcut)
      .def_property_readonly("ntypes", &DeepPot::ntypes)
      .def_property_readonly("dtype", [](const DeepPot& d) { return std::string(c10::toString(d.info().dtype)); })
      .def_property_readonly("device", [](DeepPot& d) { return d.model().device().str(); })
      .def_property_readonly("metadata", [](const DeepPot& d) { return d.info().metadata; })
      .def_property_readonly("timing", [](const DeepPot& d) { return py::make_tuple(d.timing().graph, d.timing().model); },
                             "(graph building s, model s) accumulated since load or reset_timing()")
      .def("reset_timing", &DeepPot::reset_timing)
      .def_property_readonly("topology_rebuilds", [](const DeepPot& d) { return d.nlist_graph().rebuilds(); });
}
