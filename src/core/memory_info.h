#pragma once
// How much memory this process can still take, for checks that refuse a load or a cache
// before its big allocation rather than letting the OOM killer end the process half-way.
// Two bounds: MemAvailable in /proc/meminfo (the kernel's estimate of what can be allocated
// without swapping, page cache it can drop included), and the memory cgroup the process runs
// in (a container's limit; /proc/meminfo shows the host's figures there). The lower one wins.
#include <cstdint>
#include <string>
#include <string_view>

namespace mcmoe {

struct AvailableMemory {
  enum class Source { kUnknown, kMemAvailable, kCgroupV2, kCgroupV1, kTestOverride };
  Source source = Source::kUnknown;  // which bound is the lower; kUnknown: nothing was readable
  uint64_t bytes = 0;                // the lower bound (0 with kUnknown)
  uint64_t mem_available = 0;        // MemAvailable, 0 when unknown
  // The tightest memory cgroup on the path from this process's cgroup up to the hierarchy's
  // root (limits nest): its limit file, limit and the memory in use there, counted as usage
  // less the inactive file cache it could reclaim (what kubelet calls the working set).
  std::string cgroup_limit_file;
  uint64_t cgroup_limit = 0, cgroup_used = 0;  // cgroup_limit 0: no cgroup limit found

  bool known() const { return source != Source::kUnknown; }
  // The arithmetic behind `bytes`, for messages: "cgroup v2 limit 4096.0 MiB - 1024.0 MiB in
  // use = 3072.0 MiB (/sys/fs/cgroup/x/memory.max; MemAvailable 30000.0 MiB)".
  std::string describe() const;
};

// Reads /proc/meminfo, /proc/self/cgroup, /proc/self/mountinfo and the cgroup files.
//
// For tests only: the environment variable MCMOE_TEST_MEM_AVAILABLE=BYTES replaces every
// reading with that number (source kTestOverride, and describe() says so), so a test can make
// a small model "too large" for the machine. Nothing else should set it.
AvailableMemory available_memory();

// The same readings with every file looked up under `root` (a fake /proc and /sys tree in
// tests; "" is the real one). Ignores MCMOE_TEST_MEM_AVAILABLE.
AvailableMemory read_available_memory(const std::string& root);

// Fails unless `need` bytes fit in what `avail` reports (an unknown amount lets everything
// through): "WHAT needs N MiB (B bytes), but A MiB is available: <describe>; HINT".
void check_memory_fits(uint64_t need, const AvailableMemory& avail, std::string_view what,
                       std::string_view hint);

}  // namespace mcmoe
