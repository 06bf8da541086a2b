#include "dpgraph/model.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>

#include "dpgraph/error.h"
#include "loader_pool.h"

namespace dpgraph {
namespace {

const char* kOutputNames[] = {"energy", "atom_energy", "force", "virial", "atom_virial"};

at::Device parse_device(const std::string& requested, const ModelInfo& info) {
  if (requested.empty()) return at::Device(info.device == "cuda" ? "cuda:0" : "cpu");
  if (requested.rfind("cpu", 0) != 0 && requested.rfind("cuda", 0) != 0)
    throw Error("unknown device '" + requested + "'; use cpu, cuda or cuda:K");
  try {
    at::Device d(requested);
    if (d.is_cuda() && !d.has_index()) return at::Device(at::kCUDA, 0);
    return d;
  } catch (const std::exception&) {
    throw Error("unknown device '" + requested + "'; use cpu, cuda or cuda:K");
  }
}

}  // namespace

Model::Model(const std::string& path, const std::string& device)
    : info_(check_package(path, device)), device_(parse_device(device, info_)) {
  for (const char* name : kOutputNames) {
    auto it = std::find(info_.outputs.begin(), info_.outputs.end(), name);
    if (it == info_.outputs.end())
      throw Error(path + " does not produce '" + name + "'; export an energy model with `dpgraph export`");
    slot_.push_back(static_cast<int>(it - info_.outputs.begin()));
  }
  try {
    loader_ = acquire_loader(path, device_);  // a released loader of the same file when there is one
  } catch (const std::exception& err) {
    std::string what = err.what();
    throw Error(path + " could not be loaded by AOTInductor (" + what.substr(0, what.find('\n')) +
                "); export it again with `dpgraph export`");
  }
  probe();
}

Model::~Model() = default;

void Model::probe() {
  // Two nodes, one real edge and the two padding edges, in the metadata dtype: the compiled
  // graph must return outputs of that dtype (an edited metadata dtype would otherwise feed the
  // graph misread memory and give NaN energies).
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device_);
  NeighborGraph g;
  g.atype = at::zeros({2}, lopt);
  g.n_node = at::tensor(std::vector<int64_t>{2, 2}, at::kLong).reshape({1, 2}).to(device_);
  g.edge_index = at::tensor(std::vector<int64_t>{1, 0, 0, 0, 0, 0}, at::kLong).reshape({2, 3}).to(device_);
  auto vec = at::zeros({3, 3}, at::TensorOptions().dtype(info_.dtype).device(device_));
  vec[0][0] = 0.5 * info_.rcut;
  g.edge_vec = vec;
  g.edge_mask = at::tensor(std::vector<int64_t>{1, 0, 0}, at::kLong).to(at::kBool).to(device_);
  auto out = run(g, /*validate=*/false);
  if (out.energy.scalar_type() != info_.dtype)
    throw Error(info_.path + " says it runs in " + std::string(c10::toString(info_.dtype)) +
                " but its compiled graph computes in " + std::string(c10::toString(out.energy.scalar_type())) +
                "; the metadata does not match the package: export it again with `dpgraph export`");
}

void check_finite(const Outputs& out, const std::string& path) {
  if (!at::isfinite(out.energy).all().item<bool>() || !at::isfinite(out.force).all().item<bool>())
    throw Error("the model " + path + " returned NaN or inf energies or forces; check the structure (atoms far "
                "closer than in the training data?) and that the package is intact (dpgraph info " + path + ")");
}

Outputs Model::run(const NeighborGraph& graph, bool validate) {
  if (validate) {
    graph.validate(ntypes(), info_.dtype);
    if (graph.atype.device() != device_)
      throw Error("the graph is on " + graph.atype.device().str() + " but the model runs on " + device_.str() +
                  "; build the graph on the model's device");
  }
  const auto fopt = at::TensorOptions().dtype(info_.dtype).device(device_);
  if (graph.n_nodes() == 0) {
    const int64_t nf = graph.n_frames();
    return {at::zeros({nf}, fopt), at::zeros({0}, fopt), at::zeros({0, 3}, fopt), at::zeros({nf, 9}, fopt),
            at::zeros({0, 9}, fopt)};
  }
  std::vector<at::Tensor> out;
  try {
    out = loader_->run(graph.tensors());
  } catch (const std::exception& err) {
    std::string what = err.what();
    throw Error("the model failed to run (" + what.substr(0, what.find('\n')) + ")");
  }
  if (out.size() != info_.outputs.size())
    throw Error(info_.path + " returned " + std::to_string(out.size()) + " outputs but its metadata lists " +
                std::to_string(info_.outputs.size()));
  return {out[slot_[0]], out[slot_[1]], out[slot_[2]], out[slot_[3]], out[slot_[4]]};
}

}  // namespace dpgraph
