#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace mcmoe {

namespace {
// What a path that is not a regular file is, for the error.
const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a file";
}
}  // namespace

size_t read_memory_bytes(size_t size) {
  const size_t huge = size_t{2} << 20;
  return (size + huge - 1) / huge * huge;
}

MappedFile::MappedFile(const std::string& path, LoadMode mode) : path_(path) {
  // O_NONBLOCK: opening a FIFO named as a model file would otherwise wait for a writer
  // forever; the check below refuses anything but a regular file (where the flag is moot).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file ({})", path, file_kind(st.st_mode));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0 && mode == LoadMode::kReadHugePages) {
    alloc_size_ = read_memory_bytes(size_);
    void* p = ::mmap(nullptr, alloc_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("{}: cannot allocate {} bytes: {}", path, alloc_size_, std::strerror(errno));
    }
    ::madvise(p, alloc_size_, MADV_HUGEPAGE);
    size_t done = 0;
    while (done < size_) {
      const ssize_t r = ::pread(fd, static_cast<uint8_t*>(p) + done, std::min<size_t>(size_ - done, size_t{1} << 30), static_cast<off_t>(done));
      if (r <= 0) {
        ::close(fd);
        ::munmap(p, alloc_size_);
        fail("{}: read failed at offset {} of {} bytes", path, done, size_);
      }
      done += static_cast<size_t>(r);
    }
    data_ = static_cast<const uint8_t*>(p);
    ::close(fd);
    return;
  }
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("{}: cannot map {} bytes: {}", path, size_, std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), alloc_size_ ? alloc_size_ : size_);
}

std::ifstream open_regular_file(const std::string& path, std::ios::openmode mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    // Not there: the caller says so. A default-constructed stream tests as good, so it is
    // marked failed, as a failed open would be.
    std::ifstream missing;
    missing.setstate(std::ios::failbit);
    return missing;
  }
  if (!S_ISREG(st.st_mode)) fail("{}: not a regular file ({})", path, file_kind(st.st_mode));
  return std::ifstream(path, mode);
}

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", tmp_path_, std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed at offset {}: {}", tmp_path_, offset_, std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset_ += static_cast<uint64_t>(w);
  }
}

void AtomicFileWriter::write_zeros(size_t n) {
  static const std::vector<uint8_t> zeros(4096, 0);
  while (n > 0) {
    const size_t k = std::min(n, zeros.size());
    write(zeros.data(), k);
    n -= k;
  }
}

namespace {

// A rename changes the directory, not the file: until the directory's own metadata reaches
// the disk, a crash can bring back the old name (or none) although the data was synced.
void sync_directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail("{}: cannot open its directory {} to sync the rename: {}", path, dir,
         std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // EINVAL: the file system cannot sync a directory (some network and FUSE ones); the rename
  // is as durable there as it can be made.
  if (rc != 0 && err != EINVAL)
    fail("{}: fsync of its directory {} failed: {}", path, dir, std::strerror(err));
}

}  // namespace

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", tmp_path_, std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("{}: close failed: {}", tmp_path_, std::strerror(errno));
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    fail("{}: rename to {} failed: {}", tmp_path_, path_, std::strerror(errno));
  }
  committed_ = true;
  sync_directory_of(path_);
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFileWriter out(path);
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace mcmoe
