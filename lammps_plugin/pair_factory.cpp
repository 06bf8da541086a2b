// Entry point of libdpgraph_pair.so, called by the plugin (dpgraph_plugin.cpp).
#include "pair_dpgraph.h"

extern "C" __attribute__((visibility("default"))) LAMMPS_NS::Pair *dpgraph_create_pair(LAMMPS_NS::LAMMPS *lmp) {
  return new LAMMPS_NS::PairDPGraph(lmp);
}
