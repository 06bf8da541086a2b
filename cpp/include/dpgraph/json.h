// Minimal JSON readers for the two shapes the package metadata uses: a flat
// object of strings ({"k": "v", ...}) and an array of strings (["O", "H"]).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dpgraph::json {

/// Parse `{"key": "value", ...}`; throws dpgraph::Error on anything else.
std::map<std::string, std::string> parse_string_map(const std::string& text);

/// Parse `["a", "b", ...]`; throws dpgraph::Error on anything else.
std::vector<std::string> parse_string_list(const std::string& text);

/// Quote and escape `s` as a JSON string.
std::string quote(const std::string& s);

}  // namespace dpgraph::json
