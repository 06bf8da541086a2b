// pybind11 module dpgraph._core.
//
// For now it only reports the build constants; the C++ runtime (Model,
// GraphBuilder, DeepPot) is bound here once it exists.
#include <pybind11/pybind11.h>

#include "dpgraph/version.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "dpgraph C++ runtime";
  m.attr("ABI_VERSION") = dpgraph::kAbiVersion;
  m.attr("TORCH_VERSION") = dpgraph::kTorchVersion;
}
