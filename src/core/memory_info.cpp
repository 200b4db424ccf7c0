#include "core/memory_info.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace mcmoe {

namespace {

double mib(uint64_t bytes) {
  return static_cast<double>(bytes) / 1048576.0;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The value of `key` in a "key value [unit]" file (/proc/meminfo, memory.stat).
std::optional<uint64_t> keyed_value(const std::string& path, std::string_view key) {
  std::ifstream in(path);
  std::string k, v, rest;
  while (in >> k >> v) {
    std::getline(in, rest);
    if (k == key) return parse_u64(v);
  }
  return std::nullopt;
}

// A cgroup hierarchy's mount: where it is mounted, and which cgroup its root is (not "/"
// when a container sees only its own part of the host's hierarchy).
struct CgroupMount {
  std::string root = "/", point;
};

// The mount of the cgroup v2 hierarchy (v1 = false) or of the v1 memory controller, from
// /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTIONS ... - FSTYPE SOURCE SUPEROPTS".
std::optional<CgroupMount> find_mount(const std::string& root, bool v1) {
  std::ifstream in(root + "/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    std::string id, parent, dev, mroot, point, fstype, source, opts;
    if (!(pre >> id >> parent >> dev >> mroot >> point) || !(post >> fstype >> source >> opts))
      continue;
    if (v1 ? fstype != "cgroup" || ("," + opts + ",").find(",memory,") == std::string::npos
           : fstype != "cgroup2") {
      continue;
    }
    return CgroupMount{mroot, point};
  }
  return std::nullopt;
}

// This process's path in the v2 hierarchy ("0::PATH") or the v1 memory controller's
// ("N:memory,...:PATH"), from /proc/self/cgroup.
std::optional<std::string> cgroup_path(const std::string& root, bool v1) {
  std::ifstream in(root + "/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool match = v1 ? ("," + controllers + ",").find(",memory,") != std::string::npos
                          : line.compare(0, a, "0") == 0 && controllers.empty();
    if (match) return line.substr(b + 1);
  }
  return std::nullopt;
}

struct CgroupBound {
  std::string dir;
  uint64_t limit = 0, used = 0;
  uint64_t free() const { return limit > used ? limit - used : 0; }
};

// The tightest limit on the path from this process's cgroup up to the hierarchy's root: a
// parent's limit binds its children too.
std::optional<CgroupBound> tightest_cgroup(const std::string& root, bool v1) {
  const std::optional<std::string> path = cgroup_path(root, v1);
  if (!path) return std::nullopt;
  const CgroupMount mount = find_mount(root, v1).value_or(
      CgroupMount{"/", v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup"});
  // Our cgroup relative to the mount's root; outside it (another namespace's view), only the
  // mount's own root can be read.
  std::string rel = "/";
  if (mount.root == "/") {
    rel = *path;
  } else if (path->compare(0, mount.root.size(), mount.root) == 0 &&
             (path->size() == mount.root.size() || (*path)[mount.root.size()] == '/')) {
    rel = path->substr(mount.root.size());
  }
  const char* limit_file = v1 ? "memory.limit_in_bytes" : "memory.max";
  const char* usage_file = v1 ? "memory.usage_in_bytes" : "memory.current";
  // Usage counts page cache the kernel would reclaim before failing an allocation; less the
  // inactive part of it, it is what cannot be taken back (v1 names the hierarchical count
  // total_inactive_file).
  const char* inactive_key = v1 ? "total_inactive_file" : "inactive_file";
  // v1 reports "no limit" as a huge page-rounded number, v2 as "max".
  constexpr uint64_t kNoLimit = uint64_t{1} << 62;
  std::optional<CgroupBound> best;
  for (;;) {
    const std::string dir = root + mount.point + (rel == "/" ? "" : rel);
    const auto limit_text = slurp(dir + "/" + limit_file);
    const auto limit = limit_text ? parse_u64(*limit_text) : std::nullopt;
    const auto usage_text = slurp(dir + "/" + usage_file);
    const auto usage = usage_text ? parse_u64(*usage_text) : std::nullopt;
    if (limit && *limit < kNoLimit && usage) {
      const uint64_t inactive = keyed_value(dir + "/memory.stat", inactive_key).value_or(0);
      CgroupBound b{dir + "/" + limit_file, *limit, *usage - std::min(*usage, inactive)};
      if (!best || b.free() < best->free()) best = b;
    }
    if (rel.empty() || rel == "/") break;
    const size_t slash = rel.find_last_of('/');
    rel = slash == 0 || slash == std::string::npos ? "/" : rel.substr(0, slash);
  }
  return best;
}

}  // namespace

std::string AvailableMemory::describe() const {
  const std::string meminfo = mem_available
                                  ? fmt::format("MemAvailable {:.1f} MiB", mib(mem_available))
                                  : "MemAvailable unknown";
  switch (source) {
    case Source::kUnknown:
      return "neither /proc/meminfo nor a memory cgroup could be read";
    case Source::kTestOverride:
      return fmt::format("MCMOE_TEST_MEM_AVAILABLE={} (a test override)", bytes);
    case Source::kMemAvailable:
      if (cgroup_limit == 0) return fmt::format("{} in /proc/meminfo", meminfo);
      return fmt::format("{} in /proc/meminfo; the cgroup limit {} leaves {:.1f} MiB", meminfo,
                         cgroup_limit_file,
                         mib(cgroup_limit - std::min(cgroup_limit, cgroup_used)));
    case Source::kCgroupV2:
    case Source::kCgroupV1:
      return fmt::format("cgroup {} limit {:.1f} MiB - {:.1f} MiB in use = {:.1f} MiB ({}; {})",
                         source == Source::kCgroupV2 ? "v2" : "v1", mib(cgroup_limit),
                         mib(cgroup_used), mib(bytes), cgroup_limit_file, meminfo);
  }
  return "";
}

AvailableMemory read_available_memory(const std::string& root) {
  AvailableMemory m;
  m.mem_available = keyed_value(root + "/proc/meminfo", "MemAvailable:").value_or(0) * 1024;
  if (m.mem_available > 0) {
    m.source = AvailableMemory::Source::kMemAvailable;
    m.bytes = m.mem_available;
  }
  // v1's memory controller when the process has one (hybrid systems mount v2 beside it
  // without the memory controller), otherwise v2's.
  bool v1 = true;
  std::optional<CgroupBound> cg = tightest_cgroup(root, true);
  if (!cg) {
    v1 = false;
    cg = tightest_cgroup(root, false);
  }
  if (cg) {
    m.cgroup_limit_file = cg->dir;
    m.cgroup_limit = cg->limit;
    m.cgroup_used = cg->used;
    if (!m.known() || cg->free() < m.bytes) {
      m.source = v1 ? AvailableMemory::Source::kCgroupV1 : AvailableMemory::Source::kCgroupV2;
      m.bytes = cg->free();
    }
  }
  return m;
}

AvailableMemory available_memory() {
  if (const char* v = std::getenv("MCMOE_TEST_MEM_AVAILABLE")) {
    const std::optional<uint64_t> bytes = parse_u64(v);
    if (!bytes) fail("MCMOE_TEST_MEM_AVAILABLE: expected a number of bytes, found '{}'", v);
    AvailableMemory m;
    m.source = AvailableMemory::Source::kTestOverride;
    m.bytes = *bytes;
    return m;
  }
  return read_available_memory("");
}

void check_memory_fits(uint64_t need, const AvailableMemory& avail, std::string_view what,
                       std::string_view hint) {
  if (!avail.known() || need <= avail.bytes) return;
  fail("{} needs {:.1f} MiB ({} bytes), but {:.1f} MiB ({} bytes) is available: {}{}{}", what,
       mib(need), need, mib(avail.bytes), avail.bytes, avail.describe(), hint.empty() ? "" : "; ",
       hint);
}

}  // namespace mcmoe
