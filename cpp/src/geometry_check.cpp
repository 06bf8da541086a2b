#include "dpgraph/geometry_check.h"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>

#include "dpgraph/error.h"

namespace dpgraph {
namespace {
constexpr const char* kEnv = "DPGRAPH_MAX_DENSITY";
constexpr double kDiamondDensity = 0.176;  // atoms / Å^3
}  // namespace

double max_density() {
  const char* env = std::getenv(kEnv);
  if (env == nullptr) return kDefaultMaxDensity;
  std::string text(env);
  const auto b = text.find_first_not_of(" \t"), e = text.find_last_not_of(" \t");
  if (b == std::string::npos) return kDefaultMaxDensity;
  text = text.substr(b, e - b + 1);
  double value = std::nan("");
  try {
    size_t used = 0;
    value = std::stod(text, &used);
    if (used != text.size()) value = std::nan("");
  } catch (const std::exception&) {
  }
  if (!(value > 0))
    throw Error(std::string(kEnv) + "='" + text + "' is not a positive number of atoms per Å^3 (or 'inf' for no limit)");
  return value;
}

void check_density(int64_t n_atoms, double volume, double rcut, int64_t frame) {
  if (n_atoms < 2 || !(volume > 0)) return;
  const double rho = static_cast<double>(n_atoms) / volume;
  const double limit = max_density();
  if (rho <= limit) return;
  const double sphere = 4.0 / 3.0 * M_PI * rcut * rcut * rcut;
  const double per_atom = rho * sphere;
  std::ostringstream s;
  s.precision(4);
  s << "absurd geometry in frame " << frame << ": " << n_atoms << " atoms in " << volume << " Å^3 is " << rho
    << " atoms/Å^3, about " << per_atom << " neighbours per atom within rcut = " << rcut << " Å ("
    << per_atom * static_cast<double>(n_atoms) << " edges); the densest solids have about " << kDiamondDensity
    << " atoms/Å^3 (~" << std::lround(kDiamondDensity * sphere)
    << " neighbours). Check that coordinates and cell are in Å (not nm or bohr) and the cell is not too small. "
       "Refused above "
    << limit << " atoms/Å^3; if this geometry is intended, set the environment variable " << kEnv << "="
    << static_cast<long long>(std::ceil(rho * 1.01)) << " (or inf)";
  throw Error(s.str());
}

double effective_volume(const at::Tensor& frac, double cell_volume, const at::Tensor& widths,
                        std::array<bool, 3> pbc, double rcut) {
  if (frac.size(0) == 0) return 0.0;
  double scale = 1.0;
  auto w = widths.to(at::kCPU, at::kDouble);
  for (int i = 0; i < 3; ++i) {
    if (pbc[i]) continue;
    auto col = frac.select(1, i);
    const double extent = (col.max() - col.min()).item<double>();
    scale *= std::max(extent, rcut / w[i].item<double>());
  }
  return cell_volume * scale;
}

}  // namespace dpgraph
