#pragma once
// Format-specific loaders; friends of Model so they fill it in place.
#include <string>

#include "core/mapped_file.h"
#include "core/memory_info.h"
#include "model/model.h"

namespace mcmoe::model {

// How a GGUF file of `size` bytes reaches memory, given what is available (core/memory_info.h):
// kMap maps it; kAuto reads it when it is at least 64 MiB and takes at most half of `avail`,
// and maps it otherwise; kRead reads it, and fails with the numbers when the copy would not
// fit (mapping, which needs no such room, is the way out).
LoadMode choose_load_mode(const std::string& path, uint64_t size, const LoadOptions& o,
                          const AvailableMemory& avail);

class HfLoader {
 public:
  static void load(Model& m, const std::string& dir);
};

class GgufLoader {
 public:
  static void load(Model& m, const std::string& path, LoadMode mode);
};

}  // namespace mcmoe::model
