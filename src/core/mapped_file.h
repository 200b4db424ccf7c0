#pragma once
// Read-only memory map of a whole file. Readers validate every offset against size()
// before they form a pointer into the map.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace mcmoe {

// How a file's bytes reach memory.
enum class LoadMode {
  // mmap: pages come from the page cache on demand; right for files larger than RAM.
  kMap,
  // Read into anonymous memory backed by transparent huge pages: a decode step streams
  // hundreds of MB of weights, and 2 MiB pages remove most TLB misses (measured +25-40%
  // decode speed on a 2.2 GiB model against kMap). Costs a full read at load.
  kReadHugePages,
};

// The anonymous memory LoadMode::kReadHugePages takes for a file of `size` bytes: whole
// 2 MiB pages, for checks made before the allocation.
size_t read_memory_bytes(size_t size);

class MappedFile {
 public:
  explicit MappedFile(const std::string& path, LoadMode mode = LoadMode::kMap);  // throws Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t alloc_size_ = 0;  // non-zero when the file was read into anonymous memory
};

// Writes a file atomically: content goes to PATH.tmp.<pid>, is fsync'ed, then renamed over
// PATH, and the directory is fsync'ed so the rename itself survives a crash. If the writer is
// destroyed without commit(), the temp file is removed, so a failed job never leaves a
// half-written output behind; a killed one leaves at most PATH.tmp.<pid>, never a partial PATH.
// PATH opened for reading, once it is known to be a regular file: a FIFO or a device in a
// downloaded model folder (config.json -> /dev/zero) would otherwise block or never end. A
// path that does not exist gives a stream that failed to open, for the caller's own message.
std::ifstream open_regular_file(const std::string& path, std::ios::openmode mode = std::ios::in);

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  uint64_t offset() const { return offset_; }
  void commit();

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  bool committed_ = false;
};

// A whole small file (JSON, text) through AtomicFileWriter.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace mcmoe
