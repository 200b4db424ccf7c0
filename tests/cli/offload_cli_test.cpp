// Offloading through the CLI: `run`/`ppl` with --expert-cache give the all-resident output;
// --stats and peak RSS (the cache budget bounds memory, measured, with a control run that
// breaks the bound); damaged or missing files and bad flags give one clear error line;
// `trace` + `cachesim` print one `POLICY hit-rate X` line per policy, Belady's included; the
// same on a model with a dense first layer (DeepSeek-V2 style).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "model/model.h"
#include "offload/offload_test_util.h"
#include "offload/trace.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;
using test::expect_clean_error;

std::vector<int> new_ids(const test::CliResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out).at("new_ids").get<std::vector<int>>();
}

std::string small() { return quote(test::small_offload_model()); }

std::string write_text(const test::TempDir& dir, int words) {
  static const char* kWords[] = {"the", "king", "said", "to", "his", "daughter", "and", "a", "wolf", "came",
                                 "into", "forest", "where", "old", "woman", "lived", "once", "upon", "time", "gold"};
  std::mt19937 rng(4);
  std::string text;
  for (int i = 0; i < words; ++i) text += std::string(kWords[rng() % 20]) + (i % 11 == 10 ? ".\n" : " ");
  const std::string path = dir.path("text.txt");
  std::ofstream(path) << text;
  return path;
}

TEST(OffloadCli, GreedyTokensMatchResident) {
  const std::string base = "run -m " + small() + " -p 'once upon a time the king' -n 12 --temp 0 --json --ctx 64";
  const std::vector<int> want = new_ids(run_cli(base));
  ASSERT_EQ(want.size(), 12u);
  auto m = model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  const std::string one = std::to_string(test::one_expert_budget(*m)) + "B";
  for (const std::string& flags : std::vector<std::string>{
           "--expert-cache " + one + " --cache-policy lru --prefetch 0", "--expert-cache 25%",
           "--expert-cache 50% --cache-policy lru --prefetch 2 --prefetch-m 4",
           "--expert-cache 100% --cache-policy lfu:16 --per-layer-cache --io-threads 1 --no-direct-io"}) {
    EXPECT_EQ(new_ids(run_cli(base + " " + flags)), want) << flags;
  }
}

TEST(OffloadCli, TrainedModelGreedyTextAndPerplexityMatchResident) {
  const std::string model = quote(std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf");
  const std::string run = "run -m " + model + " -p 'Once upon a time, there was a little girl' -n 12 --temp 0 --json --ctx 64";
  const std::vector<int> want = new_ids(run_cli(run));
  ASSERT_EQ(want.size(), 12u);
  EXPECT_EQ(new_ids(run_cli(run + " --expert-cache 25% --cache-policy lru")), want);
  // ppl --json prints the perplexity as a full double: equal strings, equal computation.
  test::TempDir dir;
  const std::string ppl = "ppl -m " + small() + " -f " + quote(write_text(dir, 60)) + " --ctx 32 --json";
  const auto a = run_cli(ppl), b = run_cli(ppl + " --expert-cache 30% --cache-policy lru");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(OffloadCli, StatsBlock) {
  const auto r = run_cli("run -m " + small() + " -p 'the king said' -n 6 --temp 0 --ctx 64 --expert-cache 40% --stats");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"offloading experts: cache", "expert cache: budget", "hit rate", "per layer:", "MiB per token",
                        "stall", "prediction 1 layer(s) ahead: recall", "prefetch reads", "tok/s", "peak RSS"}) {
    EXPECT_NE(r.err.find(f), std::string::npos) << "missing '" << f << "' in: " << r.err;
  }
  std::smatch hit;
  ASSERT_TRUE(std::regex_search(r.err, hit, std::regex("hit rate ([0-9.]+)"))) << r.err;
  EXPECT_GE(std::stod(hit[1]), 0.0);
  EXPECT_LE(std::stod(hit[1]), 1.0);
  // bench zeroes the counters when timed decode starts: exactly gen-tokens x layers x top-k uses.
  const auto bench = run_cli("bench -m " + small() + " --expert-cache 30% --stats --prompt-tokens 8 --gen-tokens 4 --reps 1 --no-bandwidth");
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_NE(bench.err.find(" of 32 expert uses"), std::string::npos) << bench.err;
  const auto plain = run_cli("run -m " + small() + " -p 'the king said' -n 2 --temp 0 --ctx 64 --stats");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("all resident"), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("peak RSS"), std::string::npos) << plain.err;
}

// bench opens its own sessions: --cache-aware-routing must reach them (it once did not, and
// bench measured normal routing whatever the margin). Margin 1 moves uncached picks to cached
// experts, so decode hits more than at margin 0, which moves none.
TEST(OffloadCli, BenchAppliesCacheAwareRouting) {
  const test::TempDir dir;
  const std::string text = write_text(dir, 400);  // varied tokens: greedy picks may repeat one
  auto run = [&](const char* margin) {
    const auto r = run_cli(
        "bench -m " + small() + " --text " + quote(text) +
        " --expert-cache 30% --prefetch 0 --stats --prompt-tokens 8 --gen-tokens 32 --reps 1 " +
        "--no-bandwidth --cache-aware-routing " + margin);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::smatch hit, moved;
    EXPECT_TRUE(std::regex_search(r.err, hit, std::regex("hit rate ([0-9.]+)"))) << r.err;
    EXPECT_TRUE(std::regex_search(r.err, moved, std::regex("picks uncached, ([0-9]+) of them")))
        << r.err;
    return std::pair{hit.size() > 1 ? std::stod(hit[1]) : -1.0,
                     moved.size() > 1 ? std::stoll(moved[1]) : -1LL};
  };
  const auto [hit0, moved0] = run("0");
  const auto [hit1, moved1] = run("1");
  EXPECT_EQ(moved0, 0);
  EXPECT_GT(moved1, 0);
  EXPECT_GT(hit1, hit0);
}

TEST(OffloadCli, BadFlagsAndMissingFileGiveOneErrorLine) {
  const std::string run = "run -m " + small() + " -p hi -n 1 ";
  expect_clean_error(run_cli(run + "--cache-policy lru"), {"--cache-policy", "--expert-cache"});
  expect_clean_error(run_cli(run + "--prefetch 2"), {"--prefetch", "--expert-cache"});
  expect_clean_error(run_cli(run + "--expert-cache 1B"), {"cannot hold one expert"});
  expect_clean_error(run_cli(run + "--expert-cache 0%"), {"--expert-cache", "0%"});
  expect_clean_error(run_cli(run + "--expert-cache 150%"), {"--expert-cache", "150%"});
  expect_clean_error(run_cli(run + "--expert-cache lots"), {"--expert-cache", "lots"});
  expect_clean_error(run_cli(run + "--expert-cache 50% --cache-policy mru"), {"'mru'"});
  expect_clean_error(run_cli(run + "--expert-cache 50% --cache-policy lfu:0"), {"'lfu:0'"});
  expect_clean_error(run_cli(run + "--expert-cache 50% --fallback " + small()), {"--fallback-threshold"});
  expect_clean_error(run_cli("run -m /nonexistent/model.gguf -p hi -n 1 --expert-cache 50%"), {"/nonexistent/model.gguf"});
  // Offloading reads experts from a GGUF file; a Hugging Face directory is refused, named.
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  expect_clean_error(run_cli("run -m " + quote(dir.path("hf")) + " -p hi -n 1 --expert-cache 50%"), {dir.path("hf"), "GGUF"});
}

TEST(OffloadCli, TruncatedFileGivesErrorNamingIt) {
  test::TempDir dir;
  const std::string path = dir.path("cut.gguf");
  std::filesystem::copy_file(test::small_offload_model(), path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);  // mid-experts
  for (const char* cmd : {"run", "ppl"}) {
    const std::string tail = std::string(cmd) == "run" ? " -p 'the king' -n 4" : " -f " + quote(write_text(dir, 40));
    expect_clean_error(run_cli(std::string(cmd) + " -m " + quote(path) + tail + " --expert-cache 50%"), {path, "truncated"});
  }
}

// Peak RSS of an offloaded run stays below resident weights + budget + a stated overhead, and
// the same run with every expert mapped (the control) does not: the bound can fail.
TEST(OffloadCli, PeakRssWithinBudget) {
  if (test::kAddressSanitizer)
    GTEST_SKIP() << "ASan's shadow memory and quarantine inflate the RSS measured here";
  test::TempDir dir;
  const std::string path = dir.path("big.gguf");
  // 4 layers x 12 experts of 2.5 MiB (Q8_0): 115 MiB of experts, ~3 MiB else.
  const api::SynthOptions o = test::synth_options(4, 512, 1536, 12);
  api::synth_model(o, path);
  uint64_t experts = 0;
  {
    auto m = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
    experts = test::total_expert_bytes(*m);
  }
  const uint64_t non_expert = std::filesystem::file_size(path) - experts;
  const uint64_t budget = experts / 4;
  ASSERT_GT(experts, 100ull << 20);
  // Overhead, derived: the process itself (binary, libstdc++, OpenBLAS; 10 MiB measured with a
  // 1-layer model) + the session's scratch, sized for n_batch 512 ((k+1) * 512 rows of
  // 2 * ff + 2 * dim floats and ~8 * 512 rows of dim floats: ~32 MiB here) + the KV cache at
  // --ctx 64 (0.25 MiB) + allocator and thread-stack slack: 64 MiB.
  constexpr uint64_t kOverhead = 64ull << 20;
  const double bound_mib = static_cast<double>(non_expert + budget + kOverhead) / (1 << 20);
  auto peak_rss = [](const test::CliResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    if (!std::regex_search(r.err, m, std::regex("peak RSS ([0-9.]+) MiB"))) {
      ADD_FAILURE() << "no peak RSS in: " << r.err;
      return 0.0;
    }
    return std::stod(m[1]);
  };
  const std::string run = "run -m " + quote(path) + " -p 'hello world, once upon a time' -n 8 --temp 0 --stats --ctx 64";
  const auto off = run_cli(run + " --expert-cache 25%");
  const double rss = peak_rss(off);
  EXPECT_GT(rss, 0.0);
  EXPECT_LE(rss, bound_mib) << "offloaded peak RSS above non-expert " << non_expert / 1048576.0 << " MiB + budget "
                            << budget / 1048576.0 << " MiB + 64 MiB\n"
                            << off.err;
  std::smatch cache;
  ASSERT_TRUE(std::regex_search(off.err, cache, std::regex("budget ([0-9.]+) MiB, peak ([0-9.]+) MiB"))) << off.err;
  EXPECT_LE(std::stod(cache[2]), std::stod(cache[1]));
  // Control: all experts mapped. Its peak is above the bound, so the bound is not vacuous.
  const double mapped = peak_rss(run_cli(run + " --mmap"));
  EXPECT_GT(mapped, bound_mib) << "the control run fits the bound too: the test cannot fail";
}

TEST(OffloadCli, TraceAndCachesimPrintEveryPolicy) {
  test::TempDir dir;
  const std::string trace = dir.path("t.trace");
  const auto t = run_cli("trace -m " + small() + " -f " + quote(write_text(dir, 150)) + " -o " + quote(trace) +
                         " --ctx 64 --depth 2 --top-m 2");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const offload::RoutingTrace rt = offload::read_trace(trace);
  EXPECT_EQ(rt.n_layer, 4);
  EXPECT_EQ(rt.depth, 2);
  EXPECT_GT(rt.n_tokens(), 100);

  // Every "NAME hit-rate X" line, in order.
  auto lines = [](const test::CliResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::pair<std::string, double>> out;
    std::istringstream in(r.out);
    const std::regex re("^(\\S+) hit-rate ([0-9.eE+-]+)( .*)?$");
    for (std::string l; std::getline(in, l);) {
      std::smatch m;
      if (std::regex_match(l, m, re)) out.emplace_back(m[1], std::stod(m[2]));
    }
    return out;
  };
  const auto all = lines(run_cli("cachesim " + quote(trace) + " --budget 50%"));
  std::map<std::string, double> rate(all.begin(), all.end());
  EXPECT_EQ(all.size(), 9u);
  for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle", "lru+prefetch", "lfu+prefetch",
                        "lfu-seeded+prefetch", "cycle+prefetch", "belady"}) {
    ASSERT_TRUE(rate.count(p)) << "no line for " << p;
    EXPECT_GE(rate[p], 0.0);
    EXPECT_LE(rate[p], 1.0);
  }
  for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle"})
    EXPECT_LE(rate[p], rate["belady"]) << p;
  EXPECT_GT(rate["belady"], 0.0);

  const auto one = lines(run_cli("cachesim " + quote(trace) + " --budget 50% --policy lru"));
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].first, "lru");
  EXPECT_EQ(one[0].second, rate["lru"]);  // the same replay
  EXPECT_EQ(one[1].first, "belady");
  EXPECT_EQ(one[1].second, rate["belady"]);
  const auto pf = lines(run_cli("cachesim " + quote(trace) + " --budget 25% --policy lfu+prefetch --per-layer"));
  ASSERT_EQ(pf.size(), 2u);
  EXPECT_EQ(pf[0].first, "lfu/per-layer+prefetch");
  EXPECT_EQ(pf[1].first, "belady/per-layer");
  // Belady alone, and a budget that holds everything: every policy at its cold-miss rate.
  EXPECT_EQ(lines(run_cli("cachesim " + quote(trace) + " --policy belady")).size(), 1u);
  const auto full = lines(run_cli("cachesim " + quote(trace) + " --budget 100% --policy lru"));
  ASSERT_EQ(full.size(), 2u);
  EXPECT_EQ(full[0].second, full[1].second);

  for (const char* bad : {"0%", "150%", "abc", "12XB", "-5"}) {
    expect_clean_error(run_cli("cachesim " + quote(trace) + " --budget " + bad), {"--budget", bad});
  }
  expect_clean_error(run_cli("cachesim " + quote(trace) + " --policy mru"), {"--policy", "mru"});
  // A list of policies, each replayed the same way as alone; Belady added once, last.
  const auto list = lines(run_cli("cachesim " + quote(trace) +
                                  " --budget 50% --policy lru,cycle-seeded,cycle:100+prefetch"));
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].first, "lru");
  EXPECT_EQ(list[0].second, rate["lru"]);
  EXPECT_EQ(list[1].first, "cycle-seeded");
  EXPECT_EQ(list[2].first, "cycle:100+prefetch");
  EXPECT_EQ(list[3].first, "belady");
  for (const char* bad : {"lru,,lfu", "cycle:-1", "belady+prefetch", "lfu,"}) {
    expect_clean_error(run_cli("cachesim " + quote(trace) + " --policy " + quote(bad)),
                       {"--policy"});
  }
  expect_clean_error(run_cli("cachesim " + quote(dir.path("none.trace"))), {dir.path("none.trace")});
  expect_clean_error(run_cli("cachesim " + small()), {test::small_offload_model(), "not an mcmoe routing trace"});
  expect_clean_error(run_cli("cachesim"), {"TRACE"});
  expect_clean_error(run_cli("trace -m " + small() + " -o " + quote(dir.path("x.trace"))), {"-f"});
}

// --cache-seed lays its prior out as the cache names experts (layer * most experts any layer
// stores + expert), so a model whose layers store different numbers of experts (pruned per
// layer; dense layers store none) runs seeded, with the resident model's tokens.
TEST(OffloadCli, CacheSeedOnLayersWithDifferentExpertCounts) {
  test::TempDir dir;
  const std::string text = quote(write_text(dir, 800)), reduced = dir.path("pruned.gguf"), stats = dir.path("pruned.json");
  const auto r = run_cli(
      "reduce -m " + small() + " -f " + text +
      " --method prune --keep 0.6 --per-layer adaptive --samples 4 --seq 128 -o " + quote(reduced));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    auto m = model::Model::load(reduced, {.memory = model::LoadOptions::Memory::kMap});
    const std::vector<int>& counts = m->config().layer_experts;
    ASSERT_FALSE(counts.empty());
    ASSERT_NE(*std::min_element(counts.begin(), counts.end()), *std::max_element(counts.begin(), counts.end()))
        << "every layer kept as many experts: the layout would not differ from the unreduced one";
  }
  const auto cal = run_cli("calibrate -m " + quote(reduced) + " -f " + text + " --samples 4 --seq 128 -o " + quote(stats));
  ASSERT_EQ(cal.exit_code, 0) << cal.err;
  const std::string run = "run -m " + quote(reduced) + " -p 'once upon a time the king' -n 8 --temp 0 --json --ctx 64";
  const std::vector<int> want = new_ids(run_cli(run));
  ASSERT_EQ(want.size(), 8u);
  EXPECT_EQ(new_ids(run_cli(run + " --expert-cache 25% --cache-seed " + quote(stats))), want);
}

// A family with a dense first layer, a shared expert and MLA (DeepSeek-V2 style): offloaded
// greedy tokens equal the resident ones and --stats shows the dense layer as one; `trace`
// records it without routing and `cachesim` replays the rest, marking it in --layers.
TEST(OffloadCli, DenseFirstLayerOffloadTraceAndCachesim) {
  test::TempDir dir;
  const std::string ds = dir.path("ds.gguf");
  const auto synth = run_cli("synth --arch deepseek2 --layers 3 --dim 256 --ff 256 --experts 8 --top-k 2 --shared-ff 256 "
                             "--dense-layers 1 --kv-lora 128 --type q8_0 -o " + quote(ds));
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const std::string run = "run -m " + quote(ds) + " -p 'once upon a time the king' -n 8 --temp 0 --json --ctx 64";
  const std::vector<int> want = new_ids(run_cli(run));
  ASSERT_EQ(want.size(), 8u);
  const auto off = run_cli(run + " --expert-cache 25% --stats");
  EXPECT_EQ(new_ids(off), want);
  EXPECT_TRUE(std::regex_search(off.err, std::regex("per layer: - [0-9.]+ [0-9.]+\n"))) << off.err;
  std::smatch resident;
  ASSERT_TRUE(std::regex_search(off.err, resident, std::regex("resident besides: ([0-9.]+) MiB"))) << off.err;
  EXPECT_GT(std::stod(resident[1]), 0.0);

  const std::string trace = dir.path("ds.trace");
  const auto t = run_cli("trace -m " + quote(ds) + " -f " + quote(write_text(dir, 150)) + " -o " + quote(trace) +
                         " --ctx 64 --depth 2 --top-m 2");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const offload::RoutingTrace rt = offload::read_trace(trace);
  EXPECT_EQ(rt.layer_experts, (std::vector<int>{0, 8, 8}));
  EXPECT_GT(rt.n_tokens(), 100);

  const auto sim = run_cli("cachesim " + quote(trace) + " --budget 50% --layers");
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  EXPECT_NE(sim.out.find("(dense: layer 0)"), std::string::npos) << sim.out;
  // "NAME hit-rate X ... layers - L1 L2": the dense layer has no hit rate.
  std::map<std::string, double> rate;
  std::istringstream in(sim.out);
  const std::regex re("^(\\S+) hit-rate ([0-9.eE+-]+) .* layers - ([0-9.]+) ([0-9.]+)$");
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, re)) rate[m[1]] = std::stod(m[2]);
  }
  EXPECT_EQ(rate.size(), 9u) << sim.out;
  ASSERT_TRUE(rate.count("belady")) << sim.out;
  for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle", "lru+prefetch", "lfu+prefetch",
                        "lfu-seeded+prefetch", "cycle+prefetch"}) {
    ASSERT_TRUE(rate.count(p)) << "no line for " << p << " in:\n" << sim.out;
    EXPECT_LE(rate[p], 1.0);
  }
  for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle"})
    EXPECT_LE(rate[p], rate["belady"]) << p;
  EXPECT_GT(rate["belady"], 0.0);
}

}  // namespace
}  // namespace mcmoe
