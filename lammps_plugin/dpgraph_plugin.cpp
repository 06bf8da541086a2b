// Registration of pair_style dpgraph with a running LAMMPS. Refuses, with a
// message, a LAMMPS whose version, integer sizes (-DLAMMPS_SMALLBIG) or C++
// ABI differ from the build's: any of these would misread LAMMPS' data
// structures (LAMMPS itself only prints a note on a version mismatch).
#include <dlfcn.h>

#include <string>

#include "error.h"
#include "lammps.h"
#include "lammpsplugin.h"
#include "library.h"
#include "lmptype.h"
#include "pair_dpgraph.h"

using namespace LAMMPS_NS;

namespace {

Pair *create_pair(LAMMPS *lmp) { return new PairDPGraph(lmp); }

// A LAMMPS symbol taking a std::string: present with this mangling only in a
// LAMMPS built with the same (C++11, "new") std::string ABI as this plugin.
constexpr const char *kNewAbiSymbol = "_ZN9LAMMPS_NS5utils6strdupERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE";

std::string refusal(LAMMPS *lmp) {
  if (lmp->num_ver != DPGRAPH_LAMMPS_NUM_VER)
    return "it was built for LAMMPS version " + std::to_string(DPGRAPH_LAMMPS_NUM_VER) + " but this is " +
           std::to_string(lmp->num_ver) + "; rebuild dpgraph against this LAMMPS (pip install --no-build-isolation .)";
  const int tag = lammps_extract_setting(lmp, "tagint"), big = lammps_extract_setting(lmp, "bigint"),
            img = lammps_extract_setting(lmp, "imageint");
  if (tag != sizeof(tagint) || big != sizeof(bigint) || img != sizeof(imageint))
    return "LAMMPS integer sizes (tagint " + std::to_string(tag) + ", bigint " + std::to_string(big) +
           " bytes) differ from the plugin's (-DLAMMPS_SMALLBIG: tagint " + std::to_string(sizeof(tagint)) +
           ", bigint " + std::to_string(sizeof(bigint)) + "); rebuild with the matching -DLAMMPS_SMALLBIG/BIGBIG";
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
  if (dlsym(RTLD_DEFAULT, kNewAbiSymbol) == nullptr)
    return "this LAMMPS was not built with the C++11 std::string ABI (_GLIBCXX_USE_CXX11_ABI=1) that the plugin "
           "and libtorch use";
#endif
  return "";
}

}  // namespace

extern "C" void lammpsplugin_init(void *lmp_ptr, void *handle, void *regfunc) {
  auto *lmp = static_cast<LAMMPS *>(lmp_ptr);
  const std::string why = refusal(lmp);
  if (!why.empty()) {
    lmp->error->warning(FLERR, "dpgraph plugin not registered: {}", why);
    return;
  }
  lammpsplugin_t plugin;
  plugin.version = lmp->version;
  plugin.style = "pair";
  plugin.name = "dpgraph";
  plugin.info = "dpgraph: graph-native attention interatomic potentials (.pt2 models)";
  plugin.author = "dpgraph developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &create_pair;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
