// available_memory() on fake /proc and /sys trees: MemAvailable alone, a cgroup v2 or v1
// limit below it (the tightest level of the path wins; reclaimable file cache does not count
// as used), limits that do not bind, nothing readable; and the refusal's message.
#include "core/memory_info.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/test_util.h"
#include "core/error.h"

namespace mcmoe {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;

// A fake root: files written under it, directories created as needed.
class FakeRoot {
 public:
  void file(const std::string& path, const std::string& text) const {
    const std::filesystem::path p = dir_.dir() / path.substr(1);
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  void meminfo(uint64_t available) const {
    file("/proc/meminfo",
         "MemTotal:       65536000 kB\nMemFree:          100000 kB\nMemAvailable:   " +
             std::to_string(available / 1024) + " kB\n");
  }
  std::string root() const { return dir_.dir().string(); }

 private:
  test::TempDir dir_;
};

const char* kV2Mount = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

TEST(MemoryInfo, MemAvailableAloneWhenNoCgroupLimits) {
  FakeRoot r;
  r.meminfo(8 * kGiB);
  r.file("/proc/self/cgroup", "0::/user.slice\n");
  r.file("/proc/self/mountinfo", kV2Mount);
  r.file("/sys/fs/cgroup/user.slice/memory.max", "max\n");
  r.file("/sys/fs/cgroup/user.slice/memory.current", "1000\n");
  const AvailableMemory m = read_available_memory(r.root());
  EXPECT_EQ(m.source, AvailableMemory::Source::kMemAvailable);
  EXPECT_EQ(m.bytes, 8 * kGiB);
  EXPECT_EQ(m.cgroup_limit, 0u);
  EXPECT_EQ(m.describe(), "MemAvailable 8192.0 MiB in /proc/meminfo");
}

TEST(MemoryInfo, CgroupV2LimitBelowMemAvailableBoundsIt) {
  FakeRoot r;
  r.meminfo(8 * kGiB);
  r.file("/proc/self/cgroup", "0::/job.slice/run\n");
  r.file("/proc/self/mountinfo", "22 1 0:20 / /proc rw - proc proc rw\n" + std::string(kV2Mount));
  // The job's own cgroup: 2 GiB, 1.5 GiB charged of which 0.5 GiB inactive file cache.
  r.file("/sys/fs/cgroup/job.slice/run/memory.max", std::to_string(2 * kGiB) + "\n");
  r.file("/sys/fs/cgroup/job.slice/run/memory.current", std::to_string(3 * kGiB / 2) + "\n");
  r.file("/sys/fs/cgroup/job.slice/run/memory.stat",
         "anon 1\nfile 2\nactive_file 3\ninactive_file " + std::to_string(kGiB / 2) + "\n");
  AvailableMemory m = read_available_memory(r.root());
  EXPECT_EQ(m.source, AvailableMemory::Source::kCgroupV2);
  EXPECT_EQ(m.bytes, kGiB);
  EXPECT_EQ(m.cgroup_limit, 2 * kGiB);
  EXPECT_EQ(m.cgroup_used, kGiB);
  EXPECT_EQ(m.describe(), "cgroup v2 limit 2048.0 MiB - 1024.0 MiB in use = 1024.0 MiB (" +
                              r.root() +
                              "/sys/fs/cgroup/job.slice/run/memory.max; MemAvailable 8192.0 MiB)");
  // A parent's tighter limit binds the child: 1.25 GiB with 1 GiB used leaves 256 MiB.
  r.file("/sys/fs/cgroup/job.slice/memory.max", std::to_string(5 * kGiB / 4));
  r.file("/sys/fs/cgroup/job.slice/memory.current", std::to_string(kGiB));
  m = read_available_memory(r.root());
  EXPECT_EQ(m.bytes, 256 * kMiB);
  EXPECT_EQ(m.cgroup_limit_file, r.root() + "/sys/fs/cgroup/job.slice/memory.max");
}

TEST(MemoryInfo, CgroupV1MemoryControllerUnderAContainerMountRoot) {
  FakeRoot r;
  r.meminfo(16 * kGiB);
  // The host's hierarchy seen from a container: /proc/self/cgroup names /docker/abc, and the
  // memory controller's mount has /docker as its root.
  r.file("/proc/self/cgroup", "5:devices:/docker/abc\n4:cpu,memory:/docker/abc\n0::/\n");
  r.file("/proc/self/mountinfo",
         "35 31 0:32 /docker /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,cpu,memory\n" +
             std::string(kV2Mount));
  r.file("/sys/fs/cgroup/memory/abc/memory.limit_in_bytes", std::to_string(4 * kGiB));
  r.file("/sys/fs/cgroup/memory/abc/memory.usage_in_bytes", std::to_string(3 * kGiB));
  r.file("/sys/fs/cgroup/memory/abc/memory.stat",
         "cache 5\ninactive_file 7\ntotal_inactive_file " + std::to_string(kGiB) + "\n");
  // The mount's root: v1's "no limit", a huge page-rounded number, binds nothing.
  r.file("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  r.file("/sys/fs/cgroup/memory/memory.usage_in_bytes", std::to_string(40 * kGiB));
  const AvailableMemory m = read_available_memory(r.root());
  EXPECT_EQ(m.source, AvailableMemory::Source::kCgroupV1);
  EXPECT_EQ(m.bytes, 2 * kGiB);
  EXPECT_NE(m.describe().find("cgroup v1 limit 4096.0 MiB - 2048.0 MiB in use = 2048.0 MiB"),
            std::string::npos)
      << m.describe();
  EXPECT_NE(m.describe().find("memory/abc/memory.limit_in_bytes"), std::string::npos)
      << m.describe();
}

TEST(MemoryInfo, LooserCgroupLeavesMemAvailableAndIsMentioned) {
  FakeRoot r;
  r.meminfo(kGiB);
  r.file("/proc/self/cgroup", "0::/\n");
  r.file("/proc/self/mountinfo", kV2Mount);
  r.file("/sys/fs/cgroup/memory.max", std::to_string(4 * kGiB));
  r.file("/sys/fs/cgroup/memory.current", std::to_string(kGiB));
  const AvailableMemory m = read_available_memory(r.root());
  EXPECT_EQ(m.source, AvailableMemory::Source::kMemAvailable);
  EXPECT_EQ(m.bytes, kGiB);
  EXPECT_NE(m.describe().find("leaves 3072.0 MiB"), std::string::npos) << m.describe();
}

TEST(MemoryInfo, NothingReadableLetsEverythingThrough) {
  FakeRoot r;
  const AvailableMemory m = read_available_memory(r.root());
  EXPECT_FALSE(m.known());
  EXPECT_NO_THROW(check_memory_fits(uint64_t{1} << 60, m, "anything", ""));
}

TEST(MemoryInfo, RefusalGivesTheNumbersAndTheSource) {
  AvailableMemory m;
  m.source = AvailableMemory::Source::kMemAvailable;
  m.bytes = m.mem_available = 512 * kMiB;
  EXPECT_NO_THROW(check_memory_fits(512 * kMiB, m, "x", ""));
  try {
    check_memory_fits(768 * kMiB, m, "m.gguf: reading the file into memory",
                      "map it instead (--mmap)");
    FAIL() << "not refused";
  } catch (const Error& e) {
    EXPECT_EQ(
        std::string(e.what()),
        "m.gguf: reading the file into memory needs 768.0 MiB (805306368 bytes), but 512.0 MiB "
        "(536870912 bytes) is available: MemAvailable 512.0 MiB in /proc/meminfo; map it "
        "instead (--mmap)");
  }
}

TEST(MemoryInfo, TestOverrideReplacesTheReadingsAndSaysSo) {
  ASSERT_EQ(::setenv("MCMOE_TEST_MEM_AVAILABLE", "4096", 1), 0);
  const AvailableMemory m = available_memory();
  ::unsetenv("MCMOE_TEST_MEM_AVAILABLE");
  EXPECT_EQ(m.source, AvailableMemory::Source::kTestOverride);
  EXPECT_EQ(m.bytes, 4096u);
  EXPECT_NE(m.describe().find("test override"), std::string::npos);
  EXPECT_NE(available_memory().source, AvailableMemory::Source::kTestOverride);
}

}  // namespace
}  // namespace mcmoe
