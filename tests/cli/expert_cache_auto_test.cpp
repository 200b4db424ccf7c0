// --expert-cache auto (api::auto_expert_budget): the budget is the memory available less the
// resident weights, the KV cache, the fallback copy and a margin, at most all experts; the
// arithmetic is printed and the cache stays within it. Checked on exact figures through the
// library, through the CLI with MCMOE_TEST_MEM_AVAILABLE, and, where this process may create
// one (root with the cgroup v1 memory controller mounted), under a real memory cgroup limit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "api/open_model.h"
#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "model/session.h"
#include "offload/expert_layout.h"
#include "offload/offload_provider.h"
#include "offload/offload_test_util.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

constexpr uint64_t kMiB = 1 << 20;

uint64_t all_experts(const model::Model& m) {
  uint64_t total = 0;
  for (uint64_t b : offload::expert_cache_bytes(m)) total += b;
  return total;
}

TEST(ExpertCacheAuto, ArithmeticOnExactFigures) {
  auto m =
      model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  model::SessionOptions so;
  so.n_ctx = 64;
  so.cache_type = DType::F16;
  const uint64_t experts = all_experts(*m), resident = offload::resident_weight_bytes(*m);
  const uint64_t kv = model::kv_cache_bytes_per_token(m->config(), DType::F16) * 64;
  ASSERT_GT(resident, 0u);
  ASSERT_GT(kv, 0u);
  // Available memory chosen so that half the experts fit: 0.95 A - 256 MiB - resident - kv =
  // experts / 2.
  AvailableMemory avail;
  avail.source = AvailableMemory::Source::kTestOverride;
  avail.bytes = static_cast<uint64_t>((experts / 2 + 256 * kMiB + resident + kv) / 0.95) + 64;
  const api::AutoBudget b = api::auto_expert_budget(*m, so, nullptr, avail);
  EXPECT_EQ(b.resident, resident);
  EXPECT_EQ(b.kv_cache, kv);
  EXPECT_EQ(b.fallback, 0u);
  EXPECT_EQ(b.margin, 256 * kMiB + avail.bytes / 20);
  EXPECT_EQ(b.budget, avail.bytes - resident - kv - b.margin);
  EXPECT_NEAR(static_cast<double>(b.budget), experts / 2.0, 64.0);
  for (const char* part :
       {"expert cache auto:", "MiB available", "resident weights", "KV cache (64 tokens, f16)",
        "fallback copy", "margin (256 MiB + 5%)", "of experts"}) {
    EXPECT_NE(b.arithmetic.find(part), std::string::npos) << part << " in " << b.arithmetic;
  }
  // Two sequences double the KV cache; a fallback copy is set aside too.
  so.n_seq = 2;
  EXPECT_EQ(api::auto_expert_budget(*m, so, nullptr, avail).kv_cache, 2 * kv);
  so.n_seq = 1;
  auto fallback =
      model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  avail.bytes *= 4;
  const api::AutoBudget with_fallback = api::auto_expert_budget(*m, so, fallback.get(), avail);
  EXPECT_GT(with_fallback.fallback, 0u);
  // Plenty of memory: every expert, and no more.
  avail.bytes = uint64_t{1} << 40;
  const api::AutoBudget big = api::auto_expert_budget(*m, so, nullptr, avail);
  EXPECT_EQ(big.budget, experts);
  EXPECT_NE(big.arithmetic.find("capped at all experts"), std::string::npos);
  // Too little for one expert: refused with the arithmetic; nothing known: refused.
  avail.bytes = 260 * kMiB;  // below the margin alone (256 MiB + 13 MiB)
  try {
    api::auto_expert_budget(*m, so, nullptr, avail);
    ADD_FAILURE() << "260 MiB accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot hold one expert"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("260.0 MiB available"), std::string::npos) << e.what();
  }
  EXPECT_THROW(api::auto_expert_budget(*m, so, nullptr, AvailableMemory{}), Error);
}

struct Printed {
  double auto_budget_mib = -1, stats_budget_mib = -1, peak_mib = -1;
};

// The budget the provider was given (its status line), and the --stats block's budget and peak.
Printed parse(const std::string& err) {
  Printed p;
  std::smatch m;
  if (std::regex_search(err, m, std::regex(R"(offloading experts: cache ([0-9.]+) MiB)")))
    p.auto_budget_mib = std::stod(m[1]);
  if (std::regex_search(err, m,
                        std::regex(R"(expert cache: budget ([0-9.]+) MiB, peak ([0-9.]+) MiB)"))) {
    p.stats_budget_mib = std::stod(m[1]);
    p.peak_mib = std::stod(m[2]);
  }
  return p;
}

std::string run_args() {
  return "run -m " + quote(test::small_offload_model()) +
         " -p 'once upon a time the king' -n 8 --temp 0 --ctx 64 --expert-cache auto --stats";
}

TEST(ExpertCacheAuto, CliPrintsTheArithmeticAndKeepsTheCacheWithinIt) {
  auto m =
      model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  const uint64_t experts = all_experts(*m), resident = offload::resident_weight_bytes(*m);
  const uint64_t kv =
      model::kv_cache_bytes_per_token(m->config(), DType::F16) * 64;  // run's default cache type
  const uint64_t avail = static_cast<uint64_t>((experts / 3 + 256 * kMiB + resident + kv) / 0.95);
  ::setenv("MCMOE_TEST_MEM_AVAILABLE", std::to_string(avail).c_str(), 1);
  const test::CliResult r = run_cli(run_args());
  ::unsetenv("MCMOE_TEST_MEM_AVAILABLE");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("expert cache auto: " + fmt::format("{:.1f}", avail / 1048576.0) +
                       " MiB available"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("MCMOE_TEST_MEM_AVAILABLE"), std::string::npos) << r.err;
  const Printed p = parse(r.err);
  EXPECT_NEAR(p.auto_budget_mib, experts / 3.0 / kMiB, 0.11) << r.err;
  EXPECT_NEAR(p.stats_budget_mib, p.auto_budget_mib, 0.051);
  EXPECT_LE(p.peak_mib, p.stats_budget_mib + 0.051);
  // Too little memory: one error line with the arithmetic, exit 1.
  ::setenv("MCMOE_TEST_MEM_AVAILABLE", std::to_string(200 * kMiB).c_str(), 1);
  const test::CliResult small = run_cli(run_args());
  ::unsetenv("MCMOE_TEST_MEM_AVAILABLE");
  test::expect_clean_error(small,
                           {"expert cache auto: 200.0 MiB available", "cannot hold one expert"});
}

// A memory cgroup (v1) with a limit, removed when the test ends.
class MemoryCgroup {
 public:
  explicit MemoryCgroup(uint64_t limit) {
    const std::filesystem::path root = "/sys/fs/cgroup/memory";
    if (::geteuid() != 0 || !std::filesystem::exists(root / "memory.limit_in_bytes")) return;
    dir_ = root / ("mcmoe-test-" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::create_directory(dir_, ec);
    if (ec) {
      dir_.clear();
      return;
    }
    std::ofstream(dir_ / "memory.limit_in_bytes") << limit;
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  bool ok() const { return !dir_.empty(); }
  std::string procs() const { return (dir_ / "cgroup.procs").string(); }

 private:
  std::filesystem::path dir_;
};

TEST(ExpertCacheAuto, UnderARealCgroupLimit) {
  // 700 MiB: below this machine's MemAvailable, so the cgroup is the bound; above what the
  // run needs (the small model, the margin, ASan's shadow pages in a sanitizer build).
  const uint64_t limit = 700 * kMiB;
  MemoryCgroup cg(limit);
  if (!cg.ok())
    GTEST_SKIP() << "needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory";
  test::TempDir dir;
  const std::string err = dir.path("err");
  // The shell joins the cgroup, then becomes mcmoe.
  const std::string cmd =
      "sh -c " + quote("echo $$ > " + quote(cg.procs()) + " && exec " + quote(MCMOE_CLI_PATH) +
                       " " + run_args() + " > /dev/null 2> " + quote(err));
  const int status = std::system(cmd.c_str());
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(status, 0) << text;
  EXPECT_NE(text.find("cgroup v1 limit 700.0 MiB"), std::string::npos) << text;
  const Printed p = parse(text);
  EXPECT_GT(p.auto_budget_mib, 0) << text;
  EXPECT_NEAR(p.stats_budget_mib, p.auto_budget_mib, 0.051);
  EXPECT_LE(p.peak_mib, p.stats_budget_mib + 0.051);
}

}  // namespace
}  // namespace mcmoe
