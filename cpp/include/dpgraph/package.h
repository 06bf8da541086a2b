// Reading and checking the metadata of a dpgraph `.pt2` before any native
// code is loaded from it: a foreign, corrupt or mismatched file gets a
// dpgraph::Error that says why and what to do, never a crash.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <utility>
#include <string>
#include <vector>

namespace dpgraph {

/// What a package says about itself (metadata keys: see
/// python/dpgraph/export/metadata.py).
struct ModelInfo {
  std::string path;
  std::map<std::string, std::string> metadata;  ///< the raw string map
  int abi_version = 0;
  std::vector<std::string> type_map;  ///< index = model type
  double rcut = 0.0;                  ///< cutoff, Å
  double receptive_field = 0.0;       ///< how far ghost atoms are needed, Å
  at::ScalarType dtype = at::kDouble;  ///< edge_vec and outputs
  std::string device = "cpu";          ///< "cpu" or "cuda"
  std::string cpu_isa;                 ///< "avx2", "avx512", "default"
  std::string torch_version;           ///< torch that compiled the package
  std::vector<std::string> outputs;    ///< output names, in order
  /// (a, b): one call on E edges of mean degree D keeps about E (a + b D) bytes alive
  std::pair<double, double> bytes_per_edge{65536.0, 0.0};
  bool dense_first_type = false;  ///< empty dense slots take the type of the frame's first atom
  /// Atom energies depend only on their own edges, so the graph may be cut into chunks.
  bool is_local() const { return receptive_field <= rcut; }
};

/// Read the metadata map from the archive (checks that the file exists, is a
/// zip archive, is an AOTInductor package and that every member is intact).
std::map<std::string, std::string> read_package_metadata(const std::string& path);

/// Read and check a package: check_metadata(read_package_metadata(path), path, device).
ModelInfo check_package(const std::string& path, const std::string& device = "");

/// Parse the metadata and refuse what this process cannot run on `device`
/// ("cpu", "cuda", "cuda:1"; empty = the package's own device). `cpu_isa` is
/// the CPU's instruction set to check the package's code against (empty =
/// cpu_capability()). The one metadata check of dpgraph: the Python loader
/// (dpgraph.export.load_package) calls it through the bindings.
ModelInfo check_metadata(const std::map<std::string, std::string>& metadata, const std::string& path,
                         const std::string& device = "", const std::string& cpu_isa = "");

/// The ISA torch's CPU kernels use in this process ("avx512", "avx2", "default").
std::string cpu_capability();

}  // namespace dpgraph
