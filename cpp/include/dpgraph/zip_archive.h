// A minimal reader of the zip archives `.pt2` packages are (stored members,
// as torch writes them), used to read metadata and verify every member's
// CRC-32 before the native loader extracts and dlopens the model: torch's own
// reader does not check CRCs, so a damaged shared object would load.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace dpgraph {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0, size = 0, header_offset = 0;
};

class ZipArchive {
 public:
  /// Open `path` and read its central directory; throws dpgraph::Error if the
  /// file is missing, not a zip archive, or truncated.
  explicit ZipArchive(const std::string& path);

  const std::vector<ZipEntry>& entries() const { return entries_; }

  /// Contents of a stored member, CRC-checked; throws dpgraph::Error on a
  /// mismatch, a compressed member or a truncated file.
  std::string read(const ZipEntry& entry);

 private:
  std::string path_;
  std::ifstream file_;
  uint64_t file_size_ = 0;
  std::vector<ZipEntry> entries_;
};

/// CRC-32 (IEEE 802.3, as in zip) of `n` bytes, continuing from `crc`.
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace dpgraph
