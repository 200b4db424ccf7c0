// The live expert cache (offload/offload_provider.h): logits bit-identical to the
// all-resident model for every policy, budget and prefetch setting; the budget holds under a
// random stream of begin_layer / get / end_layer / after_layer calls and every expert handed
// out holds the file's bytes; a model file truncated or removed during a run gives a clear
// error, not a hang.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/test_util.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/session.h"
#include "offload/offload_provider.h"
#include "offload/offload_test_util.h"

namespace mcmoe::offload {
namespace {

using namespace std::chrono_literals;

using test::kPrefill;
using test::run_logits;
using test::same_bits;
using test::test_tokens;

// Offloaded logits equal the resident ones bit for bit; the counters add up.
void expect_identical(const std::string& path, const std::vector<float>& want, const std::vector<int32_t>& tokens,
                      const OffloadOptions& o, const std::string& label) {
  SCOPED_TRACE(label);
  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(path, o, &p);
  const std::vector<float> got = run_logits(*m, tokens);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(same_bits(got, want)) << "max relative error " << test::relative_max_error(got, want);
  const OffloadStats s = p->stats();
  EXPECT_GT(s.accesses, 0);
  EXPECT_LE(s.hits, s.accesses);
  EXPECT_EQ(s.fallbacks, 0);
  // Every miss is one read, and so is every prefetch.
  EXPECT_EQ(s.reads, s.accesses - s.hits + s.prefetches);
  // Each expert's scales are checked on its first read only.
  EXPECT_GT(s.scale_checks, 0);
  EXPECT_LE(s.scale_checks,
            std::min<int64_t>(s.reads, int64_t{m->config().n_layer} * m->config().n_expert));
  EXPECT_LE(s.peak_cache_bytes, o.budget);
  EXPECT_LE(p->cache_bytes(), o.budget);
  EXPECT_EQ(s.decode_tokens, static_cast<int64_t>(tokens.size() - kPrefill));
  if (o.prefetch_depth == 0) {
    EXPECT_EQ(s.prefetches, 0);
  }
}

TEST(OffloadProvider, LogitsBitIdenticalToResidentForEveryPolicyAndBudget) {
  test::Watchdog dog("offloaded logits", 120s);
  const std::string& path = test::small_offload_model();
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test_tokens(resident->config().n_vocab);
  const std::vector<float> want = run_logits(*resident, tokens);
  const uint64_t total = test::total_expert_bytes(*resident), one = test::one_expert_budget(*resident);
  ASSERT_LT(one, 2 * test::max_expert_bytes(*resident));  // holds exactly one expert
  const std::vector<std::pair<std::string, uint64_t>> budgets = {
      {"one expert", one}, {"25%", total / 4}, {"50%", total / 2}, {"100%", total}};
  for (const char* policy : {"lru", "lfu", "cycle"}) {
    for (const auto& [name, budget] : budgets) {
      for (int prefetch : {0, 1}) {
        OffloadOptions o = test::offload_options(policy, budget, prefetch);
        o.prefetch_max_bytes = budget;  // so prefetch reads happen even at small budgets
        expect_identical(path, want, tokens, o, fmt::format("{} {} prefetch {}", policy, name, prefetch));
      }
    }
  }
  // Other knobs: LRFU, per-layer pools, deep prefetch, one I/O thread, buffered reads,
  // a prefetch probability floor.
  OffloadOptions o = test::offload_options("lfu:4", total / 4, 2);
  o.io_threads = 1;
  expect_identical(path, want, tokens, o, "lfu:4 25% prefetch 2, 1 I/O thread");
  expect_identical(path, want, tokens, test::offload_options("cycle-temporal:8", total / 3, 1),
                   "cycle-temporal:8 33% prefetch 1");
  o = test::offload_options("lru", total / 2, 1);
  o.per_layer = true;
  o.direct_io = false;
  expect_identical(path, want, tokens, o, "lru 50% per layer, buffered");
  o = test::offload_options("lfu", total / 3, 3);
  o.prefetch_m = 8;
  o.io_threads = 4;
  o.prefetch_max_bytes = total;
  o.prefetch_min_prob = 0.05f;
  std::vector<double> seed(32);
  for (int i = 0; i < 32; ++i) seed[i] = i % 5;
  o.lfu_seed = seed;
  expect_identical(path, want, tokens, o, "seeded lfu 33% prefetch 3 top-8");
  // The O_DIRECT path (the copy on disk; /dev/shm refuses O_DIRECT).
  const std::string& disk = test::small_offload_model_on_disk();
  expect_identical(disk, want, tokens, test::offload_options("lru", total / 4, 1), "lru 25% prefetch 1, disk");
}

TEST(OffloadProvider, LogitsBitIdenticalOnTrainedModel) {
  const std::string path = std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf";
  test::Watchdog dog("offloaded mixtral-tiny", 120s);
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test_tokens(resident->config().n_vocab);
  const std::vector<float> want = run_logits(*resident, tokens);
  const uint64_t total = test::total_expert_bytes(*resident);
  // Real routing: prefetch guesses mostly right, so reads are in flight when get() comes.
  expect_identical(path, want, tokens, test::offload_options("lru", total / 4, 1), "lru 25% prefetch 1");
}

TEST(OffloadProvider, LargeBudgetReadsEachExpertOnce) {
  const std::string& path = test::small_offload_model();
  OffloadingProvider* p = nullptr;
  auto m0 = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const uint64_t total = test::total_expert_bytes(*m0);
  auto m = test::load_offloaded(path, test::offload_options("lru", 2 * total, 0), &p);
  const std::vector<int32_t> tokens = test_tokens(m->config().n_vocab);
  run_logits(*m, tokens);
  const OffloadStats s1 = p->stats();
  EXPECT_GT(s1.reads, 0);
  EXPECT_LE(s1.reads, 32);
  EXPECT_EQ(s1.bytes_read, p->cache_bytes());  // nothing evicted: everything read is still held
  EXPECT_GE(s1.expert_bytes_total, total);     // whole pages per tensor
  // The same tokens again: all hits, no reads.
  p->reset_stats();
  run_logits(*m, tokens);
  const OffloadStats s2 = p->stats();
  EXPECT_EQ(s2.reads, 0);
  EXPECT_EQ(s2.hits, s2.accesses);
  EXPECT_EQ(s2.layer_hits, s2.layer_accesses);
}

// An expert read again after its eviction is not checked again: the checks are at most one
// per expert however often the small cache rereads them (and the output stays the resident
// model's, which expect_identical checks for every budget).
TEST(OffloadProvider, ScalesCheckedOncePerExpert) {
  const std::string& path = test::small_offload_model();
  auto m0 = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const std::vector<int32_t> tokens = test_tokens(m0->config().n_vocab);
  // With room for everything each expert the tokens use is read once: how many there are.
  OffloadingProvider* all = nullptr;
  auto m_all = test::load_offloaded(
      path, test::offload_options("lru", 2 * test::total_expert_bytes(*m0), 0), &all);
  run_logits(*m_all, tokens);
  const int64_t distinct = all->stats().reads;
  EXPECT_EQ(all->stats().scale_checks, distinct);
  // With room for two, the same experts are read again and again, and checked once each.
  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(
      path, test::offload_options("lru", 2 * test::one_expert_budget(*m0), 0), &p);
  run_logits(*m, tokens);
  const OffloadStats s = p->stats();
  ASSERT_GT(s.reads, distinct) << "the test needs rereads";
  EXPECT_EQ(s.scale_checks, distinct);
}

// A provider whose every third expert is "still being read" (ready() false) and which records
// the order of get() calls: the MoE block must run a layer's ready experts first, and the
// order must not change a bit of the output.
class SlowThirdProvider final : public moe::ExpertProvider {
 public:
  explicit SlowThirdProvider(std::vector<std::vector<moe::ExpertWeights>> experts)
      : experts_(std::move(experts)) {}
  static bool slow(int layer, int expert) { return (layer + expert) % 3 == 0; }
  int n_layers() const override { return static_cast<int>(experts_.size()); }
  int n_experts(int layer) const override { return static_cast<int>(experts_[layer].size()); }
  size_t begin_layer(int layer, std::span<const int> experts, std::span<const float>) override {
    layers.push_back(layer);
    asked.emplace_back(experts.begin(), experts.end());
    got.emplace_back();
    return experts.size();
  }
  bool ready(int layer, int expert) const override { return !slow(layer, expert); }
  moe::ExpertWeights get(int layer, int expert) override {
    got.back().push_back(expert);
    return experts_[layer][expert];
  }
  std::vector<int> layers;                   // per begin_layer call
  std::vector<std::vector<int>> asked, got;  // per begin_layer call

 private:
  std::vector<std::vector<moe::ExpertWeights>> experts_;
};

TEST(OffloadProvider, ExpertsStillBeingReadRunAfterTheReadyOnes) {
  const std::string& path = test::small_offload_model();
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test_tokens(resident->config().n_vocab);
  const std::vector<float> want = run_logits(*resident, tokens);
  auto m = model::Model::load(path);
  auto owned = std::make_unique<SlowThirdProvider>(m->stored_experts());
  SlowThirdProvider* p = owned.get();
  m->set_expert_provider(std::move(owned));
  EXPECT_TRUE(same_bits(run_logits(*m, tokens), want));
  ASSERT_FALSE(p->asked.empty());
  int split = 0;
  for (size_t c = 0; c < p->asked.size(); ++c) {
    SCOPED_TRACE(fmt::format("begin_layer call {}", c));
    std::vector<int> asked = p->asked[c], got = p->got[c];
    const int layer = p->layers[c];
    // Every expert asked for is fetched once, ...
    std::sort(asked.begin(), asked.end());
    std::vector<int> sorted = got;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, asked);
    // ... and no slow one before a ready one.
    const auto first_slow = std::find_if(got.begin(), got.end(),
                                         [&](int e) { return SlowThirdProvider::slow(layer, e); });
    EXPECT_TRUE(std::none_of(first_slow, got.end(),
                             [&](int e) { return !SlowThirdProvider::slow(layer, e); }));
    split += first_slow != got.begin() && first_slow != got.end();
  }
  EXPECT_GT(split, 0) << "no layer had both kinds of expert";
}

TEST(OffloadProvider, BudgetBelowOneExpertIsRejected) {
  const std::string& path = test::small_offload_model();
  auto m = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const uint64_t one = test::max_expert_bytes(*m);
  for (uint64_t budget : {uint64_t{0}, one - 1}) {
    try {
      OffloadingProvider p(*m, test::offload_options("lru", budget, 0));
      ADD_FAILURE() << "budget " << budget << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot hold one expert"), std::string::npos) << e.what();
    }
  }
  // Per layer, a budget of 2 experts leaves half an expert per layer.
  OffloadOptions o = test::offload_options("lru", 2 * test::one_expert_budget(*m), 0);
  o.per_layer = true;
  EXPECT_THROW(OffloadingProvider(*m, o), Error);
  EXPECT_THROW(OffloadingProvider(*m, test::offload_options("mru", 4 * one, 0)), Error);
  o = test::offload_options("lru", 4 * one, 1);
  o.prefetch_m = 9;
  EXPECT_THROW(OffloadingProvider(*m, o), Error);
}

// Random configurations driven directly with random calls: cache_bytes() <= budget after
// every call, the peak too, and every expert get() returns holds the file's bytes.
TEST(OffloadProvider, RandomStreamNeverExceedsBudget) {
  test::Watchdog dog("random stream", 120s);
  const std::string& path = test::small_offload_model();
  // The stored views of this model point into its mapping of the file: the reference bytes.
  auto ref = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const int n_layer = ref->config().n_layer, n_expert = ref->config().n_expert, d = ref->config().n_embd;
  const uint64_t total = test::total_expert_bytes(*ref), one = test::one_expert_budget(*ref);
  std::mt19937 rng(17);
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(d));
  for (int round = 0; round < 5; ++round) {
    OffloadOptions o;
    o.budget = one + rng() % total;
    o.per_layer = rng() % 3 == 0 && o.budget / n_layer >= one;
    const char* policies[] = {"lru", "lfu", "lfu:8"};
    o.policy = policies[rng() % 3];
    o.io_threads = 1 + static_cast<int>(rng() % 3);
    o.direct_io = rng() % 2;
    o.prefetch_depth = static_cast<int>(rng() % 4);
    o.prefetch_m = 1 + static_cast<int>(rng() % n_expert);
    o.prefetch_max_bytes = rng() % 2 ? 0 : o.budget;
    o.prefetch_min_recall = 0;
    const std::string label = fmt::format("round {}: budget {} per_layer {} policy {} prefetch {} top-{}", round, o.budget,
                                          o.per_layer, o.policy, o.prefetch_depth, o.prefetch_m);
    SCOPED_TRACE(label);
    OffloadingProvider* p = nullptr;
    auto m = test::load_offloaded(round % 2 == 1 ? test::small_offload_model_on_disk() : path, o, &p);
    auto check = [&](const char* after) {
      const uint64_t held = p->cache_bytes();
      ASSERT_LE(held, o.budget) << "after " << after;
    };
    for (int step = 0; step < 56; ++step) {
      // Mostly a forward pass's order, sometimes any layer.
      const int l = rng() % 4 == 0 ? static_cast<int>(rng() % n_layer) : step % n_layer;
      std::vector<int> experts(n_expert);
      for (int e = 0; e < n_expert; ++e) experts[e] = e;
      std::shuffle(experts.begin(), experts.end(), rng);
      experts.resize(1 + rng() % n_expert);
      std::vector<float> w(experts.size());
      for (auto& v : w) v = std::uniform_real_distribution<float>(0, 1)(rng);
      size_t first = 0;
      while (first < experts.size()) {
        const std::span<const int> rest(experts.data() + first, experts.size() - first);
        const size_t count = p->begin_layer(l, rest, std::span<const float>(w.data() + first, rest.size()));
        check("begin_layer");
        ASSERT_GE(count, 1u);
        ASSERT_LE(count, rest.size());
        for (size_t j = 0; j < count; ++j) {
          const moe::ExpertWeights got = p->get(l, rest[j]);
          check("get");
          const moe::ExpertWeights& want = ref->stored_experts()[l][rest[j]];
          const auto gv = got.views();
          const auto wv = want.views();
          for (size_t v = 0; v < gv.size(); ++v) {
            ASSERT_EQ(gv[v]->nbytes, wv[v]->nbytes);
            ASSERT_EQ(std::memcmp(gv[v]->data, wv[v]->data, wv[v]->nbytes), 0)
                << "expert " << rest[j] << " of layer " << l << " tensor " << v << " holds other bytes";
          }
        }
        p->end_layer(l);
        check("end_layer");
        first += count;
      }
      for (auto& v : x) v = gauss(rng);
      p->after_layer(l, x.data(), 1);
      check("after_layer");
    }
    const OffloadStats s = p->stats();
    EXPECT_LE(s.peak_cache_bytes, o.budget);
    EXPECT_EQ(s.reads, s.accesses - s.hits + s.prefetches);
  }
}

// HOBBIT fallback with a "low-bit" copy that holds the very same bytes: every miss below the
// threshold computes with the copy instead of reading, and the output is unchanged.
TEST(OffloadProvider, FallbackServesMissesWithoutReads) {
  const std::string& path = test::small_offload_model();
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test_tokens(resident->config().n_vocab);
  const std::vector<float> want = run_logits(*resident, tokens);
  OffloadOptions o = test::offload_options("lru", test::total_expert_bytes(*resident) / 4, 0);
  o.fallback = resident.get();
  o.fallback_threshold = 1.01f;  // every routing weight is below it
  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(path, o, &p);
  EXPECT_TRUE(same_bits(run_logits(*m, tokens), want));
  const OffloadStats s = p->stats();
  EXPECT_EQ(s.fallbacks, s.accesses - s.hits);
  EXPECT_GT(s.fallbacks, 0);
  EXPECT_EQ(s.reads, 0);  // nothing read: no prefetch, and every miss fell back
  EXPECT_GT(s.fallback_bytes, 0u);
  // A fallback of another shape is refused, naming it.
  test::TempDir dir;
  const api::SynthOptions so = test::synth_options(4, 128, 256, 4);
  api::synth_model(so, dir.path("other.gguf"));
  auto other = model::Model::load(dir.path("other.gguf"));
  o.fallback = other.get();
  try {
    OffloadingProvider bad(*m, o);
    ADD_FAILURE() << "a fallback with 4 experts accepted for a model with 8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path("other.gguf")), std::string::npos) << e.what();
  }
}

// A copy of the small model in its own directory, for tests that damage the file.
struct Victim {
  test::TempDir dir;
  std::string path = dir.path("victim.gguf");
  Victim() { std::filesystem::copy_file(test::small_offload_model(), path); }
};

// File offsets of every expert tensor slice, ascending.
std::vector<uint64_t> expert_offsets(const model::Model& m) {
  const uint8_t* base = m.gguf()->base();
  std::vector<uint64_t> out;
  for (const auto& layer : m.stored_experts()) {
    for (const auto& e : layer) {
      for (const TensorView* v : e.views()) out.push_back(static_cast<uint64_t>(static_cast<const uint8_t*>(v->data) - base));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Runs decode steps on an offloaded model whose file was cut to `size` bytes after loading:
// an Error naming the file and saying it ends early, from the first eval that needs a cut
// expert and again from the next attempt.
void expect_truncation_error(const OffloadOptions& o, bool cut_at_first_expert) {
  Victim v;
  test::Watchdog dog("evaluation on a truncated file", 60s);
  auto m = test::load_offloaded(v.path, o);
  const std::vector<uint64_t> offs = expert_offsets(*m);
  model::SessionOptions so;
  so.n_ctx = 64;
  so.n_threads = 2;
  model::Session s(*m, so);
  const std::vector<int32_t> tokens = test_tokens(m->config().n_vocab);
  s.eval(std::span<const int32_t>(tokens.data(), 4), false);  // fine before the cut
  const uint64_t cut = cut_at_first_expert ? offs.front() : offs[offs.size() / 2];
  std::filesystem::resize_file(v.path, cut);
  std::string error;
  for (size_t i = 4; i < tokens.size() && error.empty(); ++i) {
    try {
      s.eval(std::span<const int32_t>(&tokens[i], 1), false);
    } catch (const Error& e) {
      error = e.what();
    }
  }
  ASSERT_FALSE(error.empty()) << "no error after cutting the file to " << cut << " bytes";
  EXPECT_NE(error.find(v.path), std::string::npos) << error;
  EXPECT_NE(error.find("ends at"), std::string::npos) << error;
  // Again: still an error, still no hang.
  EXPECT_THROW(s.eval(std::span<const int32_t>(&tokens[0], 1), false), Error);
}

TEST(OffloadProvider, FileTruncatedBeforeTheExpertsGivesClearError) {
  auto m = model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  expect_truncation_error(test::offload_options("lru", test::one_expert_budget(*m), 0), true);
}

TEST(OffloadProvider, FileTruncatedMidExpertsGivesClearError) {
  auto m = model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  expect_truncation_error(test::offload_options("lfu", test::one_expert_budget(*m), 0), false);
}

TEST(OffloadProvider, FileTruncatedMidExpertsWithPrefetchGivesClearError) {
  // Prefetch reads fail too (they run ahead of need): the error must still name the file.
  auto m = model::Model::load(test::small_offload_model(), {.memory = model::LoadOptions::Memory::kMap});
  OffloadOptions o = test::offload_options("lru", 4 * test::one_expert_budget(*m), 2);
  o.prefetch_m = 4;
  o.prefetch_max_bytes = o.budget;
  expect_truncation_error(o, false);
}

// An expert whose bytes on disk carry a NaN scale is refused when it is read (the file was
// mapped, so nothing read the experts at load), naming the file, the expert and the block.
TEST(OffloadProvider, CorruptedExpertScaleIsRefusedWhenRead) {
  Victim v;
  test::Watchdog dog("evaluation with a corrupted expert", 60s);
  auto m = test::load_offloaded(v.path, test::offload_options("lru", 4 * test::one_expert_budget(*model::Model::load(v.path, {.memory = model::LoadOptions::Memory::kMap})), 0));
  ASSERT_EQ(m->stored_experts()[0][0].gate.type, DType::Q8_0);  // block 0's d at byte 0
  {
    std::fstream f(v.path, std::ios::in | std::ios::out | std::ios::binary);
    const uint8_t nan[2] = {0x00, 0x7e};
    for (uint64_t off : expert_offsets(*m)) {
      f.seekp(static_cast<std::streamoff>(off));
      f.write(reinterpret_cast<const char*>(nan), 2);
    }
  }
  const std::vector<int32_t> tokens = test_tokens(m->config().n_vocab);
  // A read whose check failed leaves the expert unchecked: its next read is checked again.
  for (int attempt = 0; attempt < 2; ++attempt) {
    SCOPED_TRACE(fmt::format("attempt {}", attempt));
    model::Session s(*m, {.n_ctx = 64, .n_threads = 2});
    try {
      s.eval(std::span<const int32_t>(tokens.data(), 4), false);
      FAIL() << "no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(v.path + ": expert "), std::string::npos) << what;
      EXPECT_NE(what.find("q8_0 block 0 (weights 0..31): scale field d is NaN"), std::string::npos)
          << what;
    }
  }
}

TEST(OffloadProvider, FileRemovedAfterLoadingStillWorks) {
  Victim v;
  auto resident = model::Model::load(v.path);
  const std::vector<int32_t> tokens = test_tokens(resident->config().n_vocab);
  const std::vector<float> want = run_logits(*resident, tokens);
  auto m = test::load_offloaded(v.path, test::offload_options("lru", test::total_expert_bytes(*resident) / 4, 1));
  std::filesystem::remove(v.path);  // the open descriptors keep the bytes
  EXPECT_TRUE(same_bits(run_logits(*m, tokens), want));
}

TEST(OffloadProvider, FileMissingWhenTheProviderOpensIt) {
  Victim v;
  auto m = model::Model::load(v.path, {.memory = model::LoadOptions::Memory::kMap});
  std::filesystem::remove(v.path);
  try {
    OffloadingProvider p(*m, test::offload_options("lru", test::total_expert_bytes(*m), 0));
    ADD_FAILURE() << "no error for a removed file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(v.path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcmoe::offload
