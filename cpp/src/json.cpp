#include "dpgraph/json.h"

#include <cstdint>

#include "dpgraph/error.h"

namespace dpgraph::json {
namespace {

class Reader {
 public:
  explicit Reader(const std::string& t) : t_(t) {}

  void expect(char c) {
    skip_ws();
    if (pos_ >= t_.size() || t_[pos_] != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool peek(char c) {
    skip_ws();
    return pos_ < t_.size() && t_[pos_] == c;
  }
  void end() {
    skip_ws();
    if (pos_ != t_.size()) fail("trailing characters");
  }

  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (pos_ >= t_.size()) fail("unterminated string");
      char c = t_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= t_.size()) fail("unterminated escape");
      char e = t_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, code_point()); break;
        default: fail("bad escape");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("malformed JSON in package metadata (" + what + " at offset " + std::to_string(pos_) + ")");
  }
  void skip_ws() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\n' || t_[pos_] == '\r' || t_[pos_] == '\t'))
      ++pos_;
  }
  uint32_t hex4() {
    if (pos_ + 4 > t_.size()) fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else fail("bad \\u escape");
    }
    return v;
  }
  uint32_t code_point() {
    uint32_t cp = hex4();
    if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 6 <= t_.size() && t_[pos_] == '\\' && t_[pos_ + 1] == 'u') {
      pos_ += 2;
      uint32_t lo = hex4();
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return cp;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  const std::string& t_;
  size_t pos_ = 0;
};

}  // namespace

std::map<std::string, std::string> parse_string_map(const std::string& text) {
  Reader r(text);
  std::map<std::string, std::string> out;
  r.expect('{');
  if (!r.peek('}')) {
    do {
      std::string key = r.string();
      r.expect(':');
      out[key] = r.string();
    } while (r.peek(',') && (r.expect(','), true));
  }
  r.expect('}');
  r.end();
  return out;
}

std::vector<std::string> parse_string_list(const std::string& text) {
  Reader r(text);
  std::vector<std::string> out;
  r.expect('[');
  if (!r.peek(']')) {
    do {
      out.push_back(r.string());
    } while (r.peek(',') && (r.expect(','), true));
  }
  r.expect(']');
  r.end();
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace dpgraph::json
