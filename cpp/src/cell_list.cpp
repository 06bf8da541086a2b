// build_graph: an O(N) cell list in torch tensor ops (CPU or CUDA), a port of
// python/dpgraph/graph/builders.py so both produce the same edge sets.
//
// 1. fractional coordinates f = r inv(cell); periodic dims wrapped to [0, 1);
// 2. periodic images only where they lie within rcut of the box
//    (n_i = ceil(rcut / d_i), d_i the perpendicular widths);
// 3. owned + image atoms binned in fractional bins of perpendicular width
//    >= rcut; each owned center searches its 27 neighboring bins;
// 4. candidates filtered by distance; images folded onto their owners.
#include <cmath>
#include <sstream>

#include "dpgraph/error.h"
#include "dpgraph/geometry_check.h"
#include "dpgraph/graph_builder.h"

namespace dpgraph {
namespace {

constexpr double kMargin = 1e-6;      // relative slack so rounding never drops a pair near a bin edge
constexpr int64_t kMaxBins = 1 << 20;  // per dimension
constexpr int64_t kMaxShifts = 1000000;

using at::indexing::Slice;

struct Edges {
  at::Tensor src, dst, vec;  // (E,) (E,) (E, 3) float64
};

void check_cell(const at::Tensor& cell, int64_t frame) {
  if (!at::isfinite(cell).all().item<bool>())
    throw Error("cell of frame " + std::to_string(frame) + " has NaN or inf entries");
  const double vol = at::linalg_det(cell).abs().item<double>();
  const double scale = at::linalg_vector_norm(cell, 2, {1}).prod().item<double>();
  if (scale == 0.0 || vol <= 1e-10 * scale) {
    std::ostringstream s;
    s << "cell of frame " << frame << " is singular or degenerate (volume " << vol
      << " Å^3); its three rows must be linearly independent lattice vectors in Å (for a slab give a "
         "non-zero vector along the non-periodic direction)";
    throw Error(s.str());
  }
}

// Periodic images within rcut of the box: owner (M,) and integer shift (M, 3).
std::pair<at::Tensor, at::Tensor> images(const at::Tensor& frac, std::array<bool, 3> pbc,
                                         const at::Tensor& rc_frac) {
  auto opt = frac.options();
  std::vector<at::Tensor> axes;
  int64_t n_shift = 1;
  auto rcf = rc_frac.cpu();
  for (int i = 0; i < 3; ++i) {
    const int64_t m = pbc[i] ? static_cast<int64_t>(std::ceil(rcf[i].item<double>() * (1 + kMargin))) : 0;
    if (m > kMaxShifts) n_shift = kMaxShifts + 1;
    else n_shift *= 2 * m + 1;
    if (n_shift > kMaxShifts)
      throw Error("the cell is far too thin for rcut: more than " + std::to_string(kMaxShifts) +
                  " periodic image shifts would be needed; check the cell units (Å) and rcut");
    axes.push_back(at::arange(-m, m + 1, opt));
  }
  auto grid = at::cartesian_prod(axes).reshape({-1, 3});
  grid = grid.index({(grid != 0).any(1)});            // (S, 3) without the zero shift
  auto pos = frac.unsqueeze(0) + grid.unsqueeze(1);  // (S, n, 3)
  auto lim = rc_frac * (1 + kMargin);
  auto keep = at::ones({pos.size(0), pos.size(1)}, opt.dtype(at::kBool));
  for (int i = 0; i < 3; ++i) {
    if (!pbc[i]) continue;
    auto p = pos.select(2, i);
    keep = keep.logical_and(p >= -lim[i]).logical_and(p < 1 + lim[i]);
  }
  auto nz = keep.nonzero();  // (M, 2): shift index, owner
  return {nz.select(1, 1), grid.index({nz.select(1, 0)})};
}

// (center, ext) pairs of atoms in the same or adjacent bins.
// Atoms binned by cells of at least rcut (in fractional units); candidate pairs of a range of
// centers are the atoms of the 27 surrounding bins.
struct Bins {
  at::Tensor b, nb, strides, lin_sorted, order;

  Bins(const at::Tensor& fe, const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& rc_frac) {
    auto span = (hi - lo).clamp_min(0);
    nb = at::floor(span / (rc_frac * (1 + kMargin))).clamp(1, kMaxBins).to(at::kLong);
    auto width = at::where(span > 0, span / nb, at::ones_like(span));
    b = at::floor((fe - lo) / width).to(at::kLong);
    b = at::minimum(b.clamp_min(0), nb - 1);  // (M, 3) bin coordinates
    strides = at::stack({nb[1] * nb[2], nb[2], at::ones_like(nb[2])});
    std::tie(lin_sorted, order) = at::sort((b * strides).sum(1));
  }

  /// (center, extended atom) candidate pairs of centers [c0, c1).
  std::pair<at::Tensor, at::Tensor> candidates(int64_t c0, int64_t c1) const {
    auto r = at::arange(-1, 2, b.options());
    auto offsets = at::cartesian_prod({r, r, r});                // (27, 3)
    auto qb = b.index({Slice(c0, c1)}).unsqueeze(1) + offsets;  // (c, 27, 3)
    auto valid = (qb >= 0).logical_and(qb < nb).all(-1);
    auto q = (qb * strides).sum(-1).reshape(-1);
    auto start = at::searchsorted(lin_sorted, q);
    auto count = (at::searchsorted(lin_sorted, q, false, true) - start) * valid.reshape(-1);
    const int64_t total = count.sum().item<int64_t>();
    auto center = at::arange(c0, c1, b.options()).repeat_interleave(27).repeat_interleave(count, 0, total);
    auto first = at::cumsum(count, 0) - count;
    auto pos = at::arange(total, b.options()) + (start - first).repeat_interleave(count, 0, total);
    return {center, order.index({pos})};
  }
};

// Centers per block of candidate pairs: candidates are ~6x the real pairs, so the cell list of a
// large box is built block by block (a few hundred MB at most) instead of all at once.
constexpr int64_t kCenterBlock = 4096;

Edges frame_edges(const at::Tensor& pos, const at::Tensor& cell_in, std::array<bool, 3> pbc, double rcut,
                  int64_t frame) {
  const int64_t n = pos.size(0);
  auto opt = pos.options();
  at::Tensor cell, widths;
  if (cell_in.defined()) {
    cell = cell_in;
    widths = perpendicular_widths(cell);
  } else {
    cell = at::eye(3, opt);
    widths = at::ones({3}, opt);
  }
  auto rc_frac = rcut / widths;
  auto periodic = at::tensor(std::vector<int64_t>{pbc[0], pbc[1], pbc[2]}, opt.dtype(at::kLong).device(at::kCPU))
                      .to(pos.device())
                      .to(at::kBool);

  auto frac = at::matmul(pos, at::linalg_inv(cell));
  check_density(n, effective_volume(frac, at::linalg_det(cell).abs().item<double>(), widths, pbc, rcut), rcut, frame);
  auto k = at::where(periodic, -at::floor(frac), at::zeros_like(frac));  // integer wrap shifts
  auto fw = frac + k;
  auto [owner_img, shift_img] = images(fw, pbc, rc_frac);
  auto owner = at::cat({at::arange(n, opt.dtype(at::kLong)), owner_img});
  auto shift = at::cat({k, k.index({owner_img}) + shift_img});
  auto fe = at::cat({fw, fw.index({owner_img}) + shift_img});

  at::Tensor dst, ext;
  auto cart = at::matmul(fe, cell);
  const double rc2 = std::pow(rcut * (1 + kMargin), 2);
  if (n > 0) {
    auto lo = at::where(periodic, -rc_frac * (1 + kMargin), std::get<0>(fw.min(0)));
    auto hi = at::where(periodic, 1 + rc_frac * (1 + kMargin), std::get<0>(fw.max(0)));
    const Bins bins(fe, lo, hi, rc_frac);
    std::vector<at::Tensor> dsts, exts;
    for (int64_t c0 = 0; c0 < n; c0 += kCenterBlock) {
      auto [d, x] = bins.candidates(c0, std::min(n, c0 + kCenterBlock));
      auto near = ((cart.index({x}) - cart.index({d})).square().sum(1) < rc2).logical_and(x != d);
      dsts.push_back(d.index({near}));
      exts.push_back(x.index({near}));
    }
    dst = at::cat(dsts);
    ext = at::cat(exts);
  } else {
    dst = ext = at::zeros({0}, opt.dtype(at::kLong));
  }
  auto src = owner.index({ext});
  auto vec = (pos.index({src}) - pos.index({dst})) + at::matmul(shift.index({ext}) - k.index({dst}), cell);
  auto r = at::linalg_vector_norm(vec, 2, {1});
  auto close = r < kOverlapTolerance;
  if (close.any().item<bool>()) {
    const int64_t e = close.nonzero()[0][0].item<int64_t>();
    const int64_t i = dst[e].item<int64_t>(), j = src[e].item<int64_t>();
    std::ostringstream s;
    s << "overlapping atoms in frame " << frame << ": "
      << (i == j ? "atom " + std::to_string(i) + " and its own periodic image"
                 : "atoms " + std::to_string(i) + " and " + std::to_string(j))
      << " are " << r[e].item<double>() << " Å apart (< " << kOverlapTolerance
      << " Å); remove duplicated atoms or fix the cell";
    throw Error(s.str());
  }
  auto keep = r < rcut;
  return {src.index({keep}), dst.index({keep}), vec.index({keep})};
}

}  // namespace

at::Tensor perpendicular_widths(const at::Tensor& cell) {
  auto vol = at::linalg_det(cell).abs();
  std::vector<at::Tensor> cross;
  for (int i = 0; i < 3; ++i) cross.push_back(at::linalg_cross(cell[(i + 1) % 3], cell[(i + 2) % 3]));
  return vol / at::linalg_vector_norm(at::stack(cross), 2, {1});
}

NeighborGraph build_graph(const at::Tensor& coords_in, const at::Tensor& atype_in, const at::Tensor& cell_in,
                          std::array<bool, 3> pbc, double rcut, at::ScalarType dtype, int64_t n_pad) {
  if (!(std::isfinite(rcut) && rcut > 0)) throw Error("rcut must be a positive finite number of Å");
  if (n_pad < kMinPaddingEdges) throw Error("n_pad must be >= 2 (the ABI needs trailing padding)");
  auto coords = coords_in.to(at::kDouble);
  if (coords.dim() == 2) coords = coords.unsqueeze(0);
  if (coords.dim() != 3 || coords.size(2) != 3)
    throw Error("coordinates must be (natoms, 3) or (nframes, natoms, 3) in Å");
  const int64_t nf = coords.size(0), n = coords.size(1);
  auto dev = coords.device();
  auto atype = atype_in.to(dev, at::kLong);
  if (atype.dim() == 1 && atype.size(0) == n) atype = atype.unsqueeze(0).expand({nf, n});
  if (atype.dim() != 2 || atype.size(0) != nf || atype.size(1) != n)
    throw Error("atom types must have shape (" + std::to_string(n) + ",) or (" + std::to_string(nf) + ", " +
                std::to_string(n) + ") to match the coordinates");
  auto bad = at::isfinite(coords).all(-1).logical_not();
  if (bad.any().item<bool>()) {
    auto fi = bad.nonzero()[0];
    throw Error("coordinates of atom " + std::to_string(fi[1].item<int64_t>()) + " (frame " +
                std::to_string(fi[0].item<int64_t>()) + ") are NaN or inf; fix the input coordinates");
  }
  at::Tensor cell;
  const bool periodic = cell_in.defined() && (pbc[0] || pbc[1] || pbc[2]);
  if (periodic) {
    cell = cell_in.to(dev, at::kDouble);
    if (cell.dim() >= 1 && cell.size(-1) == 9 && cell.dim() <= 2) cell = cell.reshape({-1, 3, 3});
    if (cell.dim() == 2) cell = cell.unsqueeze(0).expand({nf, 3, 3});
    if (cell.dim() != 3 || cell.size(0) != nf || cell.size(1) != 3 || cell.size(2) != 3)
      throw Error("cell must be (3, 3), (nframes, 3, 3) or (nframes, 9) with nframes = " + std::to_string(nf));
    for (int64_t f = 0; f < nf; ++f) check_cell(cell[f], f);
  } else {
    pbc = {false, false, false};
  }

  std::vector<at::Tensor> srcs, dsts, vecs;
  for (int64_t f = 0; f < nf; ++f) {
    auto e = frame_edges(coords[f], periodic ? cell[f] : at::Tensor(), pbc, rcut, f);
    srcs.push_back(e.src + f * n);
    dsts.push_back(e.dst + f * n);
    vecs.push_back(e.vec);
  }
  auto src = at::cat(srcs), dst = at::cat(dsts), vec = at::cat(vecs);
  // center-major, then neighbor (multiple images of one pair keep their order)
  auto perm = std::get<1>(at::sort(dst * std::max<int64_t>(nf * n, 1) + src, /*stable=*/true, 0, false));
  auto lopt = coords.options().dtype(at::kLong);
  auto pad = at::zeros({n_pad}, lopt);
  NeighborGraph g;
  g.atype = atype.reshape(-1).contiguous();
  g.n_node = at::full({nf, 2}, n, lopt);
  g.edge_index = at::stack({at::cat({src.index({perm}), pad}), at::cat({dst.index({perm}), pad})}).contiguous();
  g.edge_vec = at::cat({vec.index({perm}), at::zeros({n_pad, 3}, coords.options())}).to(dtype).contiguous();
  g.edge_mask = at::cat({at::ones({src.numel()}, lopt.dtype(at::kBool)), at::zeros({n_pad}, lopt.dtype(at::kBool))});
  return g;
}

}  // namespace dpgraph
