// Cache policies and the byte-budget rule (offload/cache_policy.h, resident_set.h): the exact
// victims of LRU, LFU, seeded LFU, LFU with a half-life and Belady on a hand-worked request
// sequence, the layer-aware cycle policy's ordering (distance in the cycle, rate,
// co-occurrence, half-life, seed) on hand-worked steps, and a ResidentSet that never holds
// more than its budget (global or per layer).
#include "offload/cache_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "offload/resident_set.h"

namespace mcmoe::offload {
namespace {

// One layer, experts 0..3 of equal size, a cache of two, one expert per step (clock = index).
// Worked by hand in the tests below.
const std::vector<int> kSeq = {0, 1, 0, 2, 0, 3, 1, 0, 2, 2, 3, 2};

struct Replay {
  std::vector<int> victims;
  std::vector<int> hit_steps;
};

// The simulator's rule (cache_sim.cpp): on a miss make room then insert; then on_use.
Replay replay(CachePolicy& p, const std::vector<int>& seq, int capacity) {
  ResidentSet cache(std::vector<uint64_t>(4, 100), std::vector<int>(4, 0), {static_cast<uint64_t>(capacity) * 100});
  Replay r;
  std::vector<int> evicted;
  for (size_t t = 0; t < seq.size(); ++t) {
    const int id = seq[t];
    if (cache.resident(id)) {
      r.hit_steps.push_back(static_cast<int>(t));
    } else {
      evicted.clear();
      EXPECT_TRUE(cache.make_room(id, p, t, [](int) { return true; }, evicted));
      r.victims.insert(r.victims.end(), evicted.begin(), evicted.end());
      cache.insert(id);
    }
    EXPECT_LE(cache.used(), cache.budget());
    p.on_use(id, t);
  }
  return r;
}

std::vector<std::vector<uint64_t>> uses_of(const std::vector<int>& seq, int n_ids) {
  std::vector<std::vector<uint64_t>> u(n_ids);
  for (size_t t = 0; t < seq.size(); ++t) u[seq[t]].push_back(t);
  return u;
}

TEST(CachePolicy, LruVictimsOnHandTrace) {
  auto p = make_lru(4);
  const Replay r = replay(*p, kSeq, 2);
  // t3 needs 2: {0 used t2, 1 used t1} -> 1; t5: {0 t4, 2 t3} -> 2; t6: {0 t4, 3 t5} -> 0;
  // t7: {3 t5, 1 t6} -> 3; t8: {1 t6, 0 t7} -> 1; t10: {0 t7, 2 t9} -> 0.
  EXPECT_EQ(r.victims, (std::vector<int>{1, 2, 0, 3, 1, 0}));
  EXPECT_EQ(r.hit_steps, (std::vector<int>{2, 4, 9, 11}));
}

TEST(CachePolicy, LfuVictimsOnHandTrace) {
  auto p = make_lfu(4);
  const Replay r = replay(*p, kSeq, 2);
  // Counts survive eviction. t3: {0:2, 1:1} -> 1; t5: {0:3, 2:1} -> 2; t6: {0:3, 3:1} -> 3;
  // t8: {0:4, 1:2} -> 1; t10: {0:4, 2:3} -> 2; t11: {0:4, 3:2} -> 3.
  EXPECT_EQ(r.victims, (std::vector<int>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(r.hit_steps, (std::vector<int>{2, 4, 7, 9}));
}

TEST(CachePolicy, SeededLfuVictimsOnHandTrace) {
  const std::vector<double> seed = {0, 5, 0, 0};  // calibration says expert 1 is hot
  auto p = make_lfu(4, seed);
  const Replay r = replay(*p, kSeq, 2);
  // 1 starts at 5 and is never the victim once in. t3: {0:2, 1:6} -> 0; t4: {1, 2:1} -> 2;
  // t5: {1, 0:3} -> 0; t7: {1:7, 3:1} -> 3; t8: {1, 0:4} -> 0; t10: {1, 2:3} -> 2; t11: {1, 3:2} -> 3.
  EXPECT_EQ(r.victims, (std::vector<int>{0, 2, 0, 3, 0, 2, 3}));
  EXPECT_EQ(r.hit_steps, (std::vector<int>{2, 6, 9}));
  EXPECT_THROW(make_lfu(4, std::vector<double>{1, 2, 3}), Error);  // one count per expert
}

TEST(CachePolicy, LfuHalfLifeMovesBetweenLfuAndLru) {
  // Expert 0 used at clocks 0, 1, 2; expert 1 once at clock 5; victim asked at clock 6.
  auto victim_with = [](std::unique_ptr<CachePolicy> p) {
    p->on_use(0, 0);
    p->on_use(0, 1);
    p->on_use(0, 2);
    p->on_use(1, 5);
    const std::vector<int> c = {0, 1};
    return p->victim(c, 6);
  };
  EXPECT_EQ(victim_with(make_lru(2)), 0);
  EXPECT_EQ(victim_with(make_lfu(2)), 1);  // 3 uses against 1
  // Half-life 2: expert 0's count is (1*2^-.5 + 1)*2^-.5 + 1 = 2.207 at clock 2, 2.207/4 = 0.552
  // by clock 6; expert 1's is 2^-.5 = 0.707: the recent one stays.
  EXPECT_EQ(victim_with(make_lfu(2, {}, 2.0)), 0);
  // Half-life 10: 2.804 * 2^-.4 = 2.125 against 0.933: frequency wins.
  EXPECT_EQ(victim_with(make_lfu(2, {}, 10.0)), 1);
  EXPECT_EQ(victim_with(make_policy("lfu:2", 1, 2)), 0);
  EXPECT_EQ(victim_with(make_policy("lfu:10", 1, 2)), 1);
  // Tiny half-life is LRU, huge is LFU, on the whole hand trace.
  auto lru = make_lru(4), tiny = make_lfu(4, {}, 0.01), lfu = make_lfu(4), huge = make_lfu(4, {}, 1e12);
  EXPECT_EQ(replay(*tiny, kSeq, 2).victims, replay(*lru, kSeq, 2).victims);
  EXPECT_EQ(replay(*huge, kSeq, 2).victims, replay(*lfu, kSeq, 2).victims);
}

TEST(CachePolicy, PrefetchIsRecencyNotFrequency) {
  // LRU: a prefetch makes an expert recent. LFU: it must not inflate the count.
  auto lru = make_lru(2), lfu = make_lfu(2);
  for (CachePolicy* p : {lru.get(), lfu.get()}) {
    p->on_use(0, 0);
    for (uint64_t c = 1; c < 5; ++c) p->on_prefetch(1, c);
  }
  const std::vector<int> c = {0, 1};
  EXPECT_EQ(lru->victim(c, 6), 0);
  EXPECT_EQ(lfu->victim(c, 6), 1);
}

TEST(CachePolicy, BeladyVictimsOnHandTrace) {
  auto p = make_belady(uses_of(kSeq, 4));
  const Replay r = replay(*p, kSeq, 2);
  // Next uses: t3 {0: t4, 1: t6} -> 1; t5 {0: t7, 2: t8} -> 2; t6 {0: t7, 3: t10} -> 3;
  // t8 {0: never, 1: never} -> lower id 0; t10 {1: never, 2: t11} -> 1.
  EXPECT_EQ(r.victims, (std::vector<int>{1, 2, 3, 0, 1}));
  EXPECT_EQ(r.hit_steps, (std::vector<int>{2, 4, 7, 9, 11}));
  EXPECT_EQ(p->name(), "belady");
}

// Belady's cursors (each id's next use found by advancing, not searching) give the
// furthest-next-use victim whatever order the clocks come in: forward as the simulator asks,
// and jumping back, against a brute-force scan of the uses.
TEST(CachePolicy, BeladyVictimsMatchBruteForceForAnyClockOrder) {
  std::mt19937 rng(5);
  const int n_ids = 12;
  std::vector<std::vector<uint64_t>> uses(n_ids);
  for (uint64_t clock = 0; clock < 400; ++clock) {
    if (rng() % 3 == 0) uses[rng() % n_ids].push_back(clock);
  }
  auto p = make_belady(uses);
  auto brute = [&](std::span<const int> cand, uint64_t clock) {
    int best = cand.front();
    uint64_t best_next = 0;
    for (int id : cand) {
      uint64_t next = std::numeric_limits<uint64_t>::max();
      for (uint64_t u : uses[id]) {
        if (u > clock) {
          next = u;
          break;
        }
      }
      if (next > best_next || (next == best_next && id < best)) best = id, best_next = next;
    }
    return best;
  };
  uint64_t clock = 0;
  for (int q = 0; q < 2000; ++q) {
    clock = rng() % 10 == 0 ? rng() % 420 : clock + rng() % 3;  // mostly forward, sometimes back
    std::vector<int> cand(n_ids);
    std::iota(cand.begin(), cand.end(), 0);
    std::shuffle(cand.begin(), cand.end(), rng);
    cand.resize(1 + rng() % n_ids);
    ASSERT_EQ(p->victim(cand, clock), brute(cand, clock)) << "query " << q << " at clock " << clock;
  }
}

TEST(CachePolicy, MakePolicyNamesAndErrors) {
  EXPECT_EQ(make_policy("lru", 1, 4)->name(), "lru");
  EXPECT_EQ(make_policy("lfu", 1, 4)->name(), "lfu");
  EXPECT_EQ(make_policy("lfu:3.5", 1, 4)->name(), "lfu");
  for (const char* ok :
       {"cycle", "cycle:0", "cycle:250", "cycle-rate", "cycle-temporal:64", "cycle-nohint"}) {
    EXPECT_EQ(make_policy(ok, 2, 4)->name(), "cycle") << ok;
  }
  for (const char* bad :
       {"lfu:", "lfu:0", "lfu:-2", "lfu:abc", "lfu:3x", "belady", "mru", "", "cycle:", "cycle:-1",
        "cycle:x", "cycle:nan", "cycle-rate:", "cycles", "cycle-marginal", "cycle-seeded"}) {
    try {
      make_policy(bad, 2, 4);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + std::string(bad) + "'"), std::string::npos) << e.what();
    }
  }
}

// The cycle policy on hand-worked steps: 3 layers x 2 experts, ids layer * 2 + expert.
// One token = steps of layers 0, 1, 2, each using the ids given.
void run_token(CachePolicy& p, const std::vector<std::vector<int>>& picks, uint64_t& clock) {
  for (int l = 0; l < static_cast<int>(picks.size()); ++l) {
    p.begin_step(l, picks[l], clock);
    for (int id : picks[l]) p.on_use(id, clock);
    ++clock;
  }
}

TEST(CachePolicy, CycleEvictsTheLayerVisitedLast) {
  // Every expert used equally often (experts alternate by token): rates are equal, so the
  // order is the distance in the cycle. After layer 0's step of the next token, layer 0's
  // unused expert is a whole cycle away (d = 3), layer 2's are 2 steps away, layer 1's 1.
  CycleOptions o;
  o.co_occurrence = false;
  o.temporal = false;  // the alternation would tell which expert comes next (tested below)
  auto p = make_cycle(3, 2, o);
  uint64_t clock = 0;
  for (int t = 0; t < 20; ++t) run_token(*p, {{t % 2}, {2 + t % 2}, {4 + t % 2}}, clock);
  p->begin_step(0, std::vector<int>{0}, clock);
  p->on_use(0, clock);
  EXPECT_EQ(p->victim(std::vector<int>{1, 2, 5}, clock), 1);  // layer 0's other expert
  EXPECT_EQ(p->victim(std::vector<int>{2, 5}, clock), 5);     // layer 2 before layer 1
  EXPECT_EQ(p->victim(std::vector<int>{3, 2}, clock), 2);     // same layer, same rate: older use
  // LFU sees equal counts and evicts the oldest use: layer 1's expert 0 (token 18), which
  // may be needed at the very next step.
  auto lfu = make_lfu(6);
  clock = 0;
  for (int t = 0; t < 20; ++t) run_token(*lfu, {{t % 2}, {2 + t % 2}, {4 + t % 2}}, clock);
  lfu->on_use(0, clock);
  EXPECT_EQ(lfu->victim(std::vector<int>{1, 2, 5}, clock), 2);
}

TEST(CachePolicy, CycleRareExpertGoesFirstEvenWhenNear) {
  // Expert 3 (layer 1) used once in 40 tokens, expert 5 (layer 2) every token: after layer
  // 0's step, 3 is one step away but expected 1 + (1 - 1/40) * 3 * 40 ≈ 118 steps; 5 is
  // expected in 2.
  CycleOptions o;
  o.co_occurrence = false;
  o.prior_tokens = 0;
  auto p = make_cycle(3, 2, o);
  uint64_t clock = 0;
  for (int t = 0; t < 40; ++t) run_token(*p, {{0}, {t == 7 ? 3 : 2}, {5}}, clock);
  p->begin_step(0, std::vector<int>{0}, clock);
  EXPECT_EQ(p->victim(std::vector<int>{3, 5}, clock), 3);
}

TEST(CachePolicy, CycleCoOccurrencePicksTheNextLayersPartner) {
  // Layer 0's expert e is always followed by layer 1's expert e (ids 2 + e); layer 1's two
  // experts have rate 1/2 each. Token 40's layer 0 picks expert 0, so id 2 is needed next
  // step and id 3 is not. Without co-occurrence the rates tie and the older use goes:
  // id 2 (token 38) against id 3 (token 39).
  CycleOptions marginal;
  marginal.co_occurrence = false;
  marginal.temporal = false;
  CycleOptions cooc = marginal;
  cooc.co_occurrence = true;
  auto with = make_cycle(3, 2, cooc), without = make_cycle(3, 2, marginal);
  for (CachePolicy* p : {with.get(), without.get()}) {
    uint64_t clock = 0;
    for (int t = 0; t < 40; ++t) run_token(*p, {{t % 2}, {2 + t % 2}, {4}}, clock);
    p->begin_step(0, std::vector<int>{0}, clock);
    p->on_use(0, clock);
  }
  const std::vector<int> c = {2, 3};
  EXPECT_EQ(with->victim(c, 200), 3);
  EXPECT_EQ(without->victim(c, 200), 2);
}

TEST(CachePolicy, CycleTemporalKnowsWhatFollowsWhat) {
  // One layer of 3 experts: 0 every token, 1 and 2 taking turns. After token 39 (used 2),
  // token 40 will use 1: the transition counts say so; rates alone tie and evict the older
  // use, 1.
  auto run = [](bool temporal) {
    CycleOptions o;
    o.temporal = temporal;
    o.hints = false;
    auto p = make_cycle(1, 3, o);
    uint64_t clock = 0;
    for (int t = 0; t < 40; ++t) run_token(*p, {{0, 1 + t % 2}}, clock);
    return p->victim(std::vector<int>{1, 2}, clock);
  };
  EXPECT_EQ(run(true), 2);
  EXPECT_EQ(run(false), 1);
}

TEST(CachePolicy, CycleKeepsWhatTheNextLayersRoutersGuess) {
  // 3 layers x 2 experts, every expert at rate 1/2. After layer 0's step, layer 1's router
  // guesses expert 1 (id 3): once guesses have proved right, id 2 goes first; with the
  // guess on expert 0 instead, id 3 does.
  auto run = [](int guessed) {
    auto p = make_cycle(3, 2, CycleOptions{});
    uint64_t clock = 0;
    for (int t = 0; t < 40; ++t) {
      const int e = (t * 7 / 3) % 2;  // no strict alternation: the transition says little
      for (int l = 0; l < 3; ++l) {
        const std::vector<int> ids = {l * 2 + e};
        p->begin_step(l, ids, clock);
        p->on_use(ids[0], clock);
        if (l + 1 < 3) p->hint(l + 1, 1, std::vector<int>{(l + 1) * 2 + e});  // always right
        ++clock;
      }
    }
    p->begin_step(0, std::vector<int>{0}, clock);
    p->on_use(0, clock);
    p->hint(1, 1, std::vector<int>{2 + guessed});
    return p->victim(std::vector<int>{2, 3}, clock);
  };
  EXPECT_EQ(run(1), 2);
  EXPECT_EQ(run(0), 3);
}

TEST(CachePolicy, CycleHalfLifeFollowsAChangeOfTopic) {
  // Layer 0: expert 0 for 100 tokens, then expert 1 for 20. Without decay 0 (100 uses) stays
  // and 1 (20) goes; with a 10-token half-life, 0's count has halved twice.
  auto run = [](double half_life) {
    CycleOptions o;
    o.half_life_tokens = half_life;
    auto p = make_cycle(1, 3, o);
    uint64_t clock = 0;
    for (int t = 0; t < 120; ++t) {
      const std::vector<int> ids = {t < 100 ? 0 : 1};
      p->begin_step(0, ids, clock);
      p->on_use(ids[0], clock);
      ++clock;
    }
    return p->victim(std::vector<int>{0, 1}, clock);
  };
  EXPECT_EQ(run(0), 1);
  EXPECT_EQ(run(10), 0);
}

TEST(CachePolicy, CycleSeedSetsThePrior) {
  // Nothing seen yet: the seed alone orders the experts.
  const std::vector<double> seed = {1, 9, 5, 5};
  auto p = make_cycle(2, 2, CycleOptions{}, seed);
  EXPECT_EQ(p->victim(std::vector<int>{0, 1}, 0), 0);
  EXPECT_THROW(make_cycle(2, 2, CycleOptions{}, std::vector<double>{1, 2, 3}), Error);
  EXPECT_THROW(make_cycle(0, 2, CycleOptions{}), Error);
}

TEST(CachePolicy, ResidentSetMakeRoomRules) {
  // Sizes 100, 200, 300, 400 in one pool of 500.
  ResidentSet s({100, 200, 300, 400}, {0, 0, 0, 0}, {500});
  auto lru = make_lru(4);
  std::vector<int> ev;
  auto all = [](int) { return true; };
  ASSERT_TRUE(s.make_room(0, *lru, 0, all, ev));
  s.insert(0);
  lru->on_use(0, 0);
  ASSERT_TRUE(s.make_room(1, *lru, 1, all, ev));
  s.insert(1);
  lru->on_use(1, 1);
  EXPECT_TRUE(ev.empty());
  EXPECT_EQ(s.used(), 300u);
  // 3 (400) needs 200 more: evicting the LRU (0, 100 bytes) is not enough, 1 goes too.
  ASSERT_TRUE(s.make_room(3, *lru, 2, all, ev));
  EXPECT_EQ(ev, (std::vector<int>{0, 1}));
  s.insert(3);
  EXPECT_EQ(s.used(), 400u);
  // Nothing evictable: false and nothing evicted.
  ev.clear();
  EXPECT_FALSE(s.make_room(2, *lru, 3, [](int) { return false; }, ev));
  EXPECT_TRUE(ev.empty());
  EXPECT_TRUE(s.resident(3));
  // Larger than the pool: false at once.
  ResidentSet tiny({600}, {0}, {500});
  EXPECT_FALSE(tiny.make_room(0, *lru, 0, all, ev));
  EXPECT_THROW(ResidentSet({1, 2}, {0}, {10}), Error);
  EXPECT_THROW(ResidentSet({1, 2}, {0, 1}, {10}), Error);
}

TEST(CachePolicy, ResidentSetPerLayerSplitsByLayerBytes) {
  // 2 layers x 2 experts; layer 1's experts are three times larger.
  const std::vector<uint64_t> sizes = {100, 100, 300, 300};
  const ResidentSet g = ResidentSet::make(sizes, 2, 800, false);
  EXPECT_EQ(g.budget(), 800u);
  EXPECT_EQ(g.pool_budget(0), 800u);
  EXPECT_EQ(g.pool_budget(3), 800u);
  const ResidentSet p = ResidentSet::make(sizes, 2, 800, true);
  EXPECT_EQ(p.pool_budget(0), 200u);
  EXPECT_EQ(p.pool_budget(1), 200u);
  EXPECT_EQ(p.pool_budget(2), 600u);
  EXPECT_EQ(p.budget(), 800u);
  EXPECT_THROW(ResidentSet::make(sizes, 3, 800, false), Error);
}

// Random inserts into random pools with random sizes: used() never exceeds the budget (nor a
// pool its own), make_room evicts only what `evictable` allows and only from id's pool, and
// the accounting matches a recount.
TEST(CachePolicy, ResidentSetRandomStreamStaysInBudget) {
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    const int n_expert = 1 + static_cast<int>(rng() % 8), n_layer = 1 + static_cast<int>(rng() % 4);
    const int n = n_expert * n_layer;
    std::vector<uint64_t> sizes(n);
    for (auto& s : sizes) s = 1 + rng() % 1000;
    const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
    const bool per_layer = rng() % 2;
    const uint64_t budget = rng() % (total + 1);
    ResidentSet set = ResidentSet::make(sizes, n_expert, budget, per_layer);
    ASSERT_LE(set.budget(), budget);
    const int which = static_cast<int>(rng() % 3);
    auto policy = which == 0 ? make_lru(n) : which == 1 ? make_lfu(n) : make_lfu(n, {}, 5.0);
    std::vector<uint8_t> locked(n, 0);
    std::vector<int> ev;
    for (uint64_t clock = 0; clock < 300; ++clock) {
      for (auto& l : locked) l = rng() % 4 == 0;
      const int id = static_cast<int>(rng() % n);
      if (set.resident(id)) {
        if (rng() % 8 == 0) set.erase(id);
        policy->on_use(id, clock);
        continue;
      }
      const std::vector<int> before = set.residents();
      ev.clear();
      const bool ok = set.make_room(id, *policy, clock, [&](int r) { return !locked[r]; }, ev);
      for (int v : ev) {
        EXPECT_FALSE(locked[v]);
        EXPECT_EQ(v / n_expert == id / n_expert || !per_layer, true);
        EXPECT_FALSE(set.resident(v));
        EXPECT_NE(std::find(before.begin(), before.end(), v), before.end());
      }
      if (!ok) {
        EXPECT_TRUE(ev.empty());
      } else {
        set.insert(id);
        policy->on_use(id, clock);
      }
      // Recount from scratch.
      uint64_t used = 0;
      std::vector<uint64_t> pool_used(n_layer, 0);
      for (int r : set.residents()) {
        used += sizes[r];
        pool_used[r / n_expert] += sizes[r];
      }
      ASSERT_EQ(used, set.used());
      ASSERT_LE(set.used(), set.budget()) << "round " << round << " clock " << clock;
      ASSERT_LE(set.used(), budget);
      if (per_layer) {
        for (int l = 0; l < n_layer; ++l) ASSERT_LE(pool_used[l], set.pool_budget(l * n_expert));
      }
    }
  }
}

}  // namespace
}  // namespace mcmoe::offload
