// Conversion between the model's units (Å, eV) and a LAMMPS unit style.
// CODATA 2018 exact values: e = 1.602176634e-19 C, N_A = 6.02214076e23.
#pragma once

#include <string>

namespace dpgraph_lammps {

struct UnitConversion {
  double length = 1.0;  // LAMMPS length units per Å
  double energy = 1.0;  // LAMMPS energy units per eV
  bool ok = true;
};

inline UnitConversion unit_conversion(const std::string& style) {
  constexpr double eV_J = 1.602176634e-19;
  constexpr double N_A = 6.02214076e23;
  if (style == "metal") return {1.0, 1.0};
  if (style == "real") return {1.0, eV_J * N_A / 4184.0};        // kcal/mol
  if (style == "si") return {1e-10, eV_J};                        // m, J
  if (style == "cgs") return {1e-8, eV_J * 1e7};                  // cm, erg
  if (style == "electron") return {1.0 / 0.529177210903, 1.0 / 27.211386245988};  // Bohr, Hartree
  if (style == "micro") return {1e-4, eV_J / 1e-15};             // µm, pg µm²/µs² = 1e-15 J
  if (style == "nano") return {1e-1, eV_J / 1e-21};              // nm, ag nm²/ns² = 1e-21 J
  return {1.0, 1.0, false};                                       // lj: no physical units
}

}  // namespace dpgraph_lammps
