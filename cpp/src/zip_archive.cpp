#include "dpgraph/zip_archive.h"

#include <array>
#include <cstring>

#include "dpgraph/error.h"

namespace dpgraph {
namespace {

constexpr uint32_t kEocd = 0x06054b50, kZip64Locator = 0x07064b50, kZip64Eocd = 0x06064b50;
constexpr uint32_t kCentral = 0x02014b50, kLocal = 0x04034b50;

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const auto& t = crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ZipArchive::ZipArchive(const std::string& path) : path_(path), file_(path, std::ios::binary) {
  const std::string again = "; export it again with `dpgraph export`";
  if (!file_) throw Error("model package " + path + " does not exist or cannot be read");
  file_.seekg(0, std::ios::end);
  file_size_ = static_cast<uint64_t>(file_.tellg());
  const std::string not_zip =
      path + " is not a .pt2 package (not a zip archive): the file is corrupt, truncated or of another format" + again;
  if (file_size_ < 22) throw Error(not_zip);
  // the end-of-central-directory record sits in the last 22 + 65535 bytes
  const uint64_t tail = std::min<uint64_t>(file_size_, 22 + 65535);
  std::string buf(tail, '\0');
  file_.seekg(static_cast<std::streamoff>(file_size_ - tail));
  file_.read(buf.data(), static_cast<std::streamsize>(tail));
  const auto* b = reinterpret_cast<const unsigned char*>(buf.data());
  int64_t at = -1;
  for (int64_t i = static_cast<int64_t>(tail) - 22; i >= 0; --i)
    if (le(b + i, 4) == kEocd) {
      at = i;
      break;
    }
  if (at < 0) {
    char magic[2] = {0, 0};
    file_.seekg(0);
    file_.read(magic, 2);
    if (magic[0] == 'P' && magic[1] == 'K')
      throw Error(path + " is truncated (no zip central directory at its end)" + again);
    throw Error(not_zip);
  }
  uint64_t count = le(b + at + 10, 2), cd_size = le(b + at + 12, 4), cd_offset = le(b + at + 16, 4);
  if ((count == 0xFFFF || cd_offset == 0xFFFFFFFF) && at >= 20 && le(b + at - 20, 4) == kZip64Locator) {
    const uint64_t z64 = le(b + at - 20 + 8, 8);
    unsigned char rec[56];
    file_.seekg(static_cast<std::streamoff>(z64));
    file_.read(reinterpret_cast<char*>(rec), 56);
    if (!file_ || le(rec, 4) != kZip64Eocd) throw Error(path + " has a corrupt zip64 directory" + again);
    count = le(rec + 32, 8);
    cd_size = le(rec + 40, 8);
    cd_offset = le(rec + 48, 8);
  }
  if (cd_offset + cd_size > file_size_) throw Error(path + " is truncated (central directory past the end)" + again);
  std::string cd(cd_size, '\0');
  file_.seekg(static_cast<std::streamoff>(cd_offset));
  file_.read(cd.data(), static_cast<std::streamsize>(cd_size));
  const auto* c = reinterpret_cast<const unsigned char*>(cd.data());
  uint64_t pos = 0;
  for (uint64_t k = 0; k < count; ++k) {
    if (pos + 46 > cd_size || le(c + pos, 4) != kCentral) throw Error(path + " has a corrupt zip directory" + again);
    ZipEntry e;
    e.method = static_cast<uint16_t>(le(c + pos + 10, 2));
    e.crc32 = static_cast<uint32_t>(le(c + pos + 16, 4));
    e.compressed_size = le(c + pos + 20, 4);
    e.size = le(c + pos + 24, 4);
    const uint64_t name_len = le(c + pos + 28, 2), extra_len = le(c + pos + 30, 2), comment_len = le(c + pos + 32, 2);
    e.header_offset = le(c + pos + 42, 4);
    if (pos + 46 + name_len + extra_len + comment_len > cd_size)
      throw Error(path + " has a corrupt zip directory" + again);
    e.name.assign(cd.data() + pos + 46, name_len);
    // zip64 extra field: 64-bit sizes / offset replace the 0xFFFFFFFF markers, in this order
    for (uint64_t x = pos + 46 + name_len; x + 4 <= pos + 46 + name_len + extra_len;) {
      const uint64_t id = le(c + x, 2), len = le(c + x + 2, 2);
      if (id == 0x0001) {
        uint64_t y = x + 4;
        if (e.size == 0xFFFFFFFF) e.size = le(c + y, 8), y += 8;
        if (e.compressed_size == 0xFFFFFFFF) e.compressed_size = le(c + y, 8), y += 8;
        if (e.header_offset == 0xFFFFFFFF) e.header_offset = le(c + y, 8);
      }
      x += 4 + len;
    }
    entries_.push_back(e);
    pos += 46 + name_len + extra_len + comment_len;
  }
}

std::string ZipArchive::read(const ZipEntry& e) {
  const std::string again = "; export it again with `dpgraph export`";
  if (e.method != 0)
    throw Error(path_ + ": member " + e.name + " is compressed; .pt2 packages store members uncompressed" + again);
  unsigned char local[30];
  file_.clear();
  file_.seekg(static_cast<std::streamoff>(e.header_offset));
  file_.read(reinterpret_cast<char*>(local), 30);
  if (!file_ || le(local, 4) != kLocal) throw Error(path_ + " is corrupt (bad local header of " + e.name + ")" + again);
  const uint64_t start = e.header_offset + 30 + le(local + 26, 2) + le(local + 28, 2);
  if (start + e.size > file_size_) throw Error(path_ + " is truncated (member " + e.name + " is cut off)" + again);
  std::string data(e.size, '\0');
  file_.seekg(static_cast<std::streamoff>(start));
  file_.read(data.data(), static_cast<std::streamsize>(e.size));
  if (!file_ || crc32(data.data(), data.size()) != e.crc32)
    throw Error(path_ + " is corrupt (member " + e.name + " fails its CRC-32 check)" + again);
  return data;
}

}  // namespace dpgraph
