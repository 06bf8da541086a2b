#include "scratch_dir.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace dpgraph_lammps {
namespace {

constexpr const char *kPrefix = "dpgraph-lmp-";
std::string g_dir;  // empty until created

std::string base_tmp() {
  const char *env = std::getenv("TMPDIR");
  return env && *env ? env : "/tmp";
}

void remove_at_exit() {
  if (g_dir.empty()) return;
  std::error_code ec;
  fs::remove_all(g_dir, ec);
  g_dir.clear();
}

// Scratch directories of processes that no longer exist (killed by a signal or by mpirun
// after another rank aborted): dpgraph-lmp-<pid>-XXXXXX with no process <pid>.
void sweep_stale(const std::string &base) {
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kPrefix, 0) != 0) continue;
    const std::string rest = name.substr(std::string(kPrefix).size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    char *end_ptr = nullptr;
    const long pid = std::strtol(rest.c_str(), &end_ptr, 10);
    if (end_ptr != rest.c_str() + dash || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code rm;
    fs::remove_all(it->path(), rm);
  }
}

}  // namespace

const std::string &scratch_dir() {
  if (!g_dir.empty()) return g_dir;
  const std::string base = base_tmp();
  sweep_stale(base);
  std::string tmpl = base + "/" + kPrefix + std::to_string(::getpid()) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory in " + base + " (" + std::strerror(errno) +
                             "); set TMPDIR to a writable directory");
  g_dir = buf.data();
  static bool registered = false;
  if (!registered) registered = std::atexit(remove_at_exit) == 0;
  return g_dir;
}

std::vector<std::string> scratch_entries() {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(scratch_dir(), ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  return names;
}

void remove_scratch_entries_except(const std::vector<std::string> &keep) {
  for (const auto &name : scratch_entries()) {
    if (std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
    std::error_code rm;
    fs::remove_all(fs::path(scratch_dir()) / name, rm);
  }
}

ScratchTmpdir::ScratchTmpdir() {
  const std::string &dir = scratch_dir();
  if (const char *old = std::getenv("TMPDIR")) had_ = true, old_ = old;
  ::setenv("TMPDIR", dir.c_str(), 1);
}

ScratchTmpdir::~ScratchTmpdir() {
  if (had_) ::setenv("TMPDIR", old_.c_str(), 1);
  else ::unsetenv("TMPDIR");
}

}  // namespace dpgraph_lammps
