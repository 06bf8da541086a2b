// dpgraph::Error: every refusal of the runtime. The message names the cause
// and what to do about it (re-export, convert the input, ...).
#pragma once

#include <stdexcept>
#include <string>

namespace dpgraph {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace dpgraph
