#pragma once
// A 64-byte-aligned buffer that grows on demand and keeps its memory between calls. Hot
// paths hold one per thread (thread_local), so steady-state decode does not allocate.
#include <cstddef>
#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace mcmoe {

class AlignedScratch {
 public:
  // At least `bytes`, 64-byte aligned. Contents are not kept when it grows; it grows with
  // 50% headroom so a slowly rising size does not reallocate every call.
  void* get(size_t bytes) {
    if (bytes > capacity_) {
      const size_t want = (bytes + bytes / 2 + 63) / 64 * 64;
      buffer_.reset(std::aligned_alloc(64, want));
      capacity_ = buffer_ ? want : 0;
      if (!buffer_) fail("cannot allocate {} bytes of scratch memory", want);
    }
    return buffer_.get();
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> buffer_;
  size_t capacity_ = 0;
};

}  // namespace mcmoe
