#pragma once
// Explicit reads of a model file, bypassing the page cache where the filesystem allows
// (O_DIRECT): an offloaded expert must cost a real read every time the cache misses, and
// must not leave a second copy of itself in the page cache that the memory budget does not
// see. Buffers are anonymous mappings so freeing one returns its pages to the system at once.
#include <cstdint>
#include <memory>
#include <string>

namespace mcmoe::offload {

// Page-aligned anonymous memory (O_DIRECT wants aligned buffers), released with munmap.
struct PageBuffer {
  uint8_t* data = nullptr;
  size_t size = 0;
  PageBuffer() = default;
  explicit PageBuffer(size_t n);
  ~PageBuffer();
  PageBuffer(PageBuffer&& o) noexcept : data(o.data), size(o.size) { o.data = nullptr; o.size = 0; }
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
};

class FileReader {
 public:
  static constexpr uint64_t kAlign = 4096;  // O_DIRECT offset/length/address granularity
  // direct: try O_DIRECT first (falls back to buffered reads + dropping the pages after).
  FileReader(const std::string& path, bool direct);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  bool direct() const { return direct_; }
  const std::string& path() const { return path_; }
  // Current size of the file (fstat), so a file truncated while in use is noticed.
  uint64_t current_size() const;
  // Reads [offset, offset + n) into dst. In direct mode offset, n and dst must be kAlign
  // multiples (n may run past the end of the file by less than kAlign). Throws Error naming
  // the file, `what`, the range and the bytes actually there when the file is shorter.
  void read(uint64_t offset, uint64_t n, uint8_t* dst, uint64_t needed, const std::string& what) const;
  // Reads an arbitrary range without O_DIRECT (small resident tensors at load).
  void read_buffered(uint64_t offset, uint64_t n, uint8_t* dst, const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;         // O_DIRECT when direct_
  int fd_buffered_ = -1;
  bool direct_ = false;
};

}  // namespace mcmoe::offload
