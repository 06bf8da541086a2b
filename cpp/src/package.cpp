#include "dpgraph/package.h"

#include <ATen/Version.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "dpgraph/error.h"
#include "dpgraph/version.h"
#include "dpgraph/zip_archive.h"

namespace dpgraph {
namespace {

const char* kReexport = "; export it again with `dpgraph export`";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int isa_rank(const std::string& isa) {
  if (isa == "avx512") return 2;
  if (isa == "avx2") return 1;
  return 0;
}

// The package metadata is JSON: a flat object of strings, some of which hold
// JSON themselves (type_map, outputs: arrays of strings).
template <class T>
T parse_json_as(const std::string& text, const std::string& what, const std::string& path) {
  try {
    return nlohmann::json::parse(text).get<T>();
  } catch (const nlohmann::json::exception& err) {
    throw Error(path + " has a malformed " + what + " in its metadata (" + err.what() + ")" + kReexport);
  }
}

double to_double(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) throw Error(path + " has no '" + key + "' in its metadata" + kReexport);
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    throw Error(path + " has a malformed '" + key + "' (" + it->second + ")" + kReexport);
  }
}

}  // namespace

std::string cpu_capability() {
  std::string cap = at::get_cpu_capability();  // "AVX512", "AVX2", "DEFAULT", ...
  std::transform(cap.begin(), cap.end(), cap.begin(), [](unsigned char c) { return std::tolower(c); });
  return cap;
}

std::map<std::string, std::string> read_package_metadata(const std::string& path) {
  ZipArchive zip(path);
  std::string meta_text;
  bool found = false;
  for (const auto& entry : zip.entries()) {
    // reading every member verifies its CRC: a damaged shared object is
    // refused here instead of being loaded
    std::string data = zip.read(entry);
    if (!found && ends_with(entry.name, "wrapper_metadata.json")) {
      meta_text = std::move(data);
      found = true;
    }
  }
  if (!found)
    throw Error(path + " is not an AOTInductor package (no compiled model inside); export it with `dpgraph export`");
  return parse_json_as<std::map<std::string, std::string>>(meta_text, "wrapper_metadata.json", path);
}

ModelInfo check_package(const std::string& path, const std::string& device) {
  return check_metadata(read_package_metadata(path), path, device);
}

ModelInfo check_metadata(const std::map<std::string, std::string>& metadata, const std::string& path,
                         const std::string& device, const std::string& cpu_isa) {
  ModelInfo info;
  info.path = path;
  info.metadata = metadata;
  const auto& m = info.metadata;
  auto get = [&](const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string() : it->second;
  };
  if (get("dpgraph.format") != "dpgraph")
    throw Error(path + " is an AOTInductor package but not a dpgraph model (no dpgraph metadata); export the model "
                       "with `dpgraph export`");
  const std::string abi = get("abi_version");
  if (abi != std::to_string(kAbiVersion))
    throw Error(path + " uses NeighborGraph ABI version " + (abi.empty() ? "?" : abi) + " but this dpgraph reads version " +
                std::to_string(kAbiVersion) + "; re-export the model with this dpgraph version");
  info.abi_version = kAbiVersion;
  info.torch_version = get("torch_version");
  if (info.torch_version != kTorchVersion)
    throw Error(path + " was compiled with torch " + info.torch_version + " but this dpgraph runs torch " +
                kTorchVersion +
                "; AOTInductor packages only load in the torch that built them. Re-export the model with this "
                "torch (dpgraph export ...)");
  const std::string dtype = get("dtype");
  if (dtype == "float64") info.dtype = at::kDouble;
  else if (dtype == "float32") info.dtype = at::kFloat;
  else throw Error(path + " has unsupported dtype '" + dtype + "' (float32 or float64 expected)" + kReexport);

  info.device = get("device").empty() ? "cpu" : get("device");
  std::string want = device.empty() ? info.device : device.substr(0, device.find(':'));
  if (want != "cpu" && want != "cuda") throw Error("unknown device '" + device + "'; use cpu, cuda or cuda:K");
  if (want != info.device)
    throw Error(path + " was compiled for " + info.device + " but " + device + " was requested; export the model for " +
                want + " (dpgraph export --device " + want + ")");
  info.cpu_isa = get("cpu_isa").empty() ? "default" : get("cpu_isa");
  if (info.cpu_isa != "default" && info.cpu_isa != "avx2" && info.cpu_isa != "avx512")
    throw Error(path + " targets an unknown CPU instruction set '" + info.cpu_isa + "'" + kReexport);
  if (info.device == "cpu") {
    const std::string have = cpu_isa.empty() ? cpu_capability() : cpu_isa;
    if (isa_rank(info.cpu_isa) > isa_rank(have))
      throw Error(path + " contains " + info.cpu_isa + " code but this CPU supports only " + have +
                  "; export a portable package (dpgraph export --portable) or export on this machine");
  } else if (info.device == "cuda") {
    if (!torch::cuda::is_available())
      throw Error(path + " needs CUDA but no CUDA device is available to this process; export for cpu instead");
  } else {
    throw Error(path + " targets unknown device '" + info.device + "'" + kReexport);
  }
  info.type_map = parse_json_as<std::vector<std::string>>(get("type_map"), "type_map", path);
  info.outputs = parse_json_as<std::vector<std::string>>(get("outputs"), "outputs", path);
  if (info.type_map.empty()) throw Error(path + " has an empty type_map" + kReexport);
  info.rcut = to_double(m, "rcut", path);
  info.receptive_field = m.count("receptive_field") ? to_double(m, "receptive_field", path) : info.rcut;
  if (m.count("bytes_per_edge_a") && m.count("bytes_per_edge_b"))
    info.bytes_per_edge = {to_double(m, "bytes_per_edge_a", path), to_double(m, "bytes_per_edge_b", path)};
  info.dense_first_type = m.count("dense_first_type") && m.at("dense_first_type") == "1";
  return info;
}

}  // namespace dpgraph
