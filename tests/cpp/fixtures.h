// Test fixtures written by make_fixtures.py: arrays by name from
// $DPGRAPH_FIXTURES/<case>.txt, and tolerance helpers.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fixtures {

inline std::string dir() {
  const char* d = std::getenv("DPGRAPH_FIXTURES");
  return d ? d : "fixtures";
}

inline std::string path(const std::string& name) { return dir() + "/" + name; }

/// Arrays of one case: name -> flat float64 or int64 tensor.
inline std::map<std::string, at::Tensor> load(const std::string& name) {
  std::ifstream f(path(name + ".txt"));
  if (!f) throw std::runtime_error("missing fixture " + path(name + ".txt") + " (run make_fixtures.py)");
  std::map<std::string, at::Tensor> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream s(line);
    std::string key, kind;
    int64_t n = 0;
    s >> key >> kind >> n;
    if (kind == "f64") {
      std::vector<double> v(n);
      for (auto& x : v) s >> x;
      out[key] = at::tensor(v, at::kDouble);
    } else {
      std::vector<int64_t> v(n);
      for (auto& x : v) s >> x;
      out[key] = at::tensor(v, at::kLong);
    }
  }
  return out;
}

inline std::vector<int> ints(const at::Tensor& t) {
  auto c = t.contiguous();
  return std::vector<int>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

/// max |got - want| / max(max |want|, 1e-8) <= rtol
inline void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what,
                         double rtol = 1e-10) {
  auto g = got.to(at::kDouble).reshape(-1), w = want.to(at::kDouble).reshape(-1);
  ASSERT_EQ(g.numel(), w.numel()) << what << ": size mismatch";
  if (w.numel() == 0) return;
  const double scale = std::max(w.abs().max().item<double>(), 1e-8);
  const double diff = (g - w).abs().max().item<double>() / scale;
  EXPECT_LE(diff, rtol) << what << ": relative difference " << diff;
}

/// The five per-frame outputs of a DeepPot result against a fixture's arrays.
template <class Result>
inline void expect_outputs_close(const Result& r, std::map<std::string, at::Tensor>& c) {
  expect_close(r.energy, c["energy"], "energy");
  expect_close(r.force, c["force"], "force");
  expect_close(r.virial, c["virial"], "virial");
  expect_close(r.atom_energy, c["atom_energy"], "atom_energy");
  expect_close(r.atom_virial, c["atom_virial"], "atom_virial");
}

}  // namespace fixtures
