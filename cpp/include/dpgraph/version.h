// dpgraph build constants shared by the C++ runtime and the Python module.
#pragma once

#ifndef DPGRAPH_ABI_VERSION
#define DPGRAPH_ABI_VERSION 1
#endif

namespace dpgraph {

/// NeighborGraph ABI version this build reads and writes (docs/design.md, "The ABI").
constexpr int kAbiVersion = DPGRAPH_ABI_VERSION;

/// torch version the build was configured against ("2.13.0+cpu").
constexpr const char* kTorchVersion = DPGRAPH_TORCH_VERSION;

}  // namespace dpgraph
