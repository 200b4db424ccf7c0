#include "offload/file_reader.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace mcmoe::offload {

PageBuffer::PageBuffer(size_t n) : size(n) {
  if (n == 0) return;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate {} bytes for an expert buffer: {}", n, std::strerror(errno));
  data = static_cast<uint8_t*>(p);
}

PageBuffer::~PageBuffer() {
  if (data) munmap(data, size);
}

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    if (data) munmap(data, size);
    data = o.data;
    size = o.size;
    o.data = nullptr;
    o.size = 0;
  }
  return *this;
}

FileReader::FileReader(const std::string& path, bool direct) : path_(path) {
  fd_buffered_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_buffered_ < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  if (direct) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    direct_ = fd_ >= 0;  // tmpfs and some others refuse O_DIRECT (EINVAL)
  }
  if (!direct_) fd_ = fd_buffered_;
}

FileReader::~FileReader() {
  if (direct_ && fd_ >= 0) ::close(fd_);
  if (fd_buffered_ >= 0) ::close(fd_buffered_);
}

uint64_t FileReader::current_size() const {
  struct stat st {};
  if (fstat(fd_buffered_, &st) != 0) fail("{}: fstat failed: {}", path_, std::strerror(errno));
  return static_cast<uint64_t>(st.st_size);
}

namespace {

// pread until n bytes or end of file; returns the bytes read.
uint64_t pread_all(int fd, uint64_t offset, uint64_t n, uint8_t* dst, const std::string& path, const std::string& what) {
  uint64_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, dst + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("{}: reading {} ({} bytes at offset {}) failed: {}", path, what, n, offset, std::strerror(errno));
    }
    if (r == 0) break;
    done += static_cast<uint64_t>(r);
  }
  return done;
}

}  // namespace

void FileReader::read(uint64_t offset, uint64_t n, uint8_t* dst, uint64_t needed, const std::string& what) const {
  const uint64_t got = pread_all(fd_, offset, n, dst, path_, what);
  if (got < needed) {
    fail("{}: {} needs bytes {}..{} but the file ends at {} (truncated or replaced while in use?)", path_, what, offset,
         offset + needed, offset + got);
  }
  // Buffered fallback: drop what this read put in the page cache, so the cache budget is the
  // only copy that stays in memory.
  if (!direct_) posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(n), POSIX_FADV_DONTNEED);
}

void FileReader::read_buffered(uint64_t offset, uint64_t n, uint8_t* dst, const std::string& what) const {
  const uint64_t got = pread_all(fd_buffered_, offset, n, dst, path_, what);
  if (got < n) {
    fail("{}: {} needs bytes {}..{} but the file ends at {}", path_, what, offset, offset + n, offset + got);
  }
  posix_fadvise(fd_buffered_, static_cast<off_t>(offset), static_cast<off_t>(n), POSIX_FADV_DONTNEED);
}

}  // namespace mcmoe::offload
