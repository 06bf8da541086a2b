// Refuse physically absurd geometry before a neighbour graph is built (the
// C++ twin of python/dpgraph/geometry_check.py): a cell in nm instead of Å, or
// one atom in a 0.2 Å periodic cell, asks for tens of thousands of neighbours
// per atom. The number density is checked against kDefaultMaxDensity atoms/Å^3
// (about 11x diamond); the environment variable DPGRAPH_MAX_DENSITY
// (atoms/Å^3, or inf) overrides it.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>

namespace dpgraph {

constexpr double kDefaultMaxDensity = 2.0;  // atoms / Å^3

/// The density limit: $DPGRAPH_MAX_DENSITY or kDefaultMaxDensity; throws Error on a malformed value.
double max_density();

/// Throws dpgraph::Error, with the estimated neighbours per atom and how to
/// override, if n_atoms in volume Å^3 is denser than max_density().
void check_density(int64_t n_atoms, double volume, double rcut, int64_t frame);

/// Volume (Å^3) the atoms fill: the cell along periodic directions, the atoms'
/// extent (at least rcut) along open ones. frac: (n, 3) fractional coordinates
/// (Cartesian with a unit cell for open boundaries); widths: (3,) perpendicular
/// widths of the cell (Å).
double effective_volume(const at::Tensor& frac, double cell_volume, const at::Tensor& widths,
                        std::array<bool, 3> pbc, double rcut);

}  // namespace dpgraph
