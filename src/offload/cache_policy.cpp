#include "offload/cache_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/error.h"

namespace mcmoe::offload {

namespace {

class Lru final : public CachePolicy {
 public:
  explicit Lru(int n_ids) : last_use_(static_cast<size_t>(n_ids), 0) {}
  std::string name() const override { return "lru"; }
  void on_use(int id, uint64_t clock) override { last_use_[id] = clock + 1; }
  void on_prefetch(int id, uint64_t clock) override { last_use_[id] = clock + 1; }
  int victim(std::span<const int> candidates, uint64_t) const override {
    return *std::min_element(candidates.begin(), candidates.end(),
                             [&](int a, int b) { return last_use_[a] < last_use_[b]; });
  }

 private:
  std::vector<uint64_t> last_use_;  // clock + 1 of the latest use; 0 = never
};

class Lfu final : public CachePolicy {
 public:
  Lfu(int n_ids, std::span<const double> seed, double half_life)
      : count_(static_cast<size_t>(n_ids), 0.0), last_use_(count_.size(), 0), decay_(half_life > 0 ? std::log(2.0) / half_life : 0) {
    if (!seed.empty()) {
      if (seed.size() != count_.size()) fail("LFU seed has {} counts for {} experts", seed.size(), count_.size());
      std::copy(seed.begin(), seed.end(), count_.begin());
    }
  }
  std::string name() const override { return "lfu"; }
  void on_use(int id, uint64_t clock) override {
    count_[id] = decayed(id, clock) + 1.0;
    last_use_[id] = clock + 1;
  }
  // A prefetch is a guess, not a use: it must not inflate the count.
  void on_prefetch(int id, uint64_t clock) override {
    count_[id] = decayed(id, clock);
    last_use_[id] = clock + 1;
  }
  int victim(std::span<const int> candidates, uint64_t clock) const override {
    return *std::min_element(candidates.begin(), candidates.end(), [&](int a, int b) {
      const double ca = decayed(a, clock), cb = decayed(b, clock);
      return ca != cb ? ca < cb : last_use_[a] < last_use_[b];
    });
  }

 private:
  // The count as seen at `clock`: with a half-life, older uses weigh less (LRFU), so the
  // policy follows a change of topic instead of remembering the first one forever.
  double decayed(int id, uint64_t clock) const {
    if (decay_ == 0 || last_use_[id] == 0) return count_[id];
    return count_[id] * std::exp(-decay_ * static_cast<double>(clock + 1 - last_use_[id]));
  }
  std::vector<double> count_;
  std::vector<uint64_t> last_use_;
  double decay_;
};

// Not safe to call from several threads at once (victim() advances the cursors); only the
// simulator, single-threaded, makes one.
class Belady final : public CachePolicy {
 public:
  explicit Belady(std::vector<std::vector<uint64_t>> uses)
      : uses_(std::move(uses)), cursor_(uses_.size(), 0) {}
  std::string name() const override { return "belady"; }
  void on_use(int, uint64_t) override {}
  void on_prefetch(int, uint64_t) override {}
  int victim(std::span<const int> candidates, uint64_t clock) const override {
    int best = candidates.front();
    uint64_t best_next = 0;
    for (int id : candidates) {
      const uint64_t next = next_use(id, clock);
      if (next > best_next || (next == best_next && id < best)) {
        best = id;
        best_next = next;
      }
    }
    return best;
  }

 private:
  // First use strictly after `clock`; max when never used again. The simulator's clock only
  // moves forward, so each id keeps a cursor into its uses that only advances: amortised O(1)
  // per candidate instead of a binary search over up to a whole trace's uses (which made
  // Belady the slowest part of cachesim on 48 × 128-expert traces). A clock that moves back
  // searches again, so the answer never depends on the order of calls.
  uint64_t next_use(int id, uint64_t clock) const {
    const std::vector<uint64_t>& u = uses_[id];
    size_t& c = cursor_[id];
    if (c > 0 && u[c - 1] > clock)
      c = static_cast<size_t>(std::upper_bound(u.begin(), u.end(), clock) - u.begin());
    while (c < u.size() && u[c] <= clock) ++c;
    return c == u.size() ? std::numeric_limits<uint64_t>::max() : u[c];
  }
  std::vector<std::vector<uint64_t>> uses_;
  // Per id: uses_[id][0, cursor) are at or before the last clock asked.
  mutable std::vector<size_t> cursor_;
};

}  // namespace

std::unique_ptr<CachePolicy> make_lru(int n_ids) { return std::make_unique<Lru>(n_ids); }
std::unique_ptr<CachePolicy> make_lfu(int n_ids, std::span<const double> seed, double half_life) {
  return std::make_unique<Lfu>(n_ids, seed, half_life);
}
std::unique_ptr<CachePolicy> make_belady(std::vector<std::vector<uint64_t>> uses) {
  return std::make_unique<Belady>(std::move(uses));
}

std::unique_ptr<CachePolicy> make_policy(const std::string& name, int n_layer, int n_expert,
                                         std::span<const double> seed) {
  const int n_ids = n_layer * n_expert;
  // The number after ':' in "NAME:X", which must be positive (or, with allow_zero, zero).
  auto number_after = [&](size_t prefix, bool allow_zero, const char* expected) {
    char* end = nullptr;
    const double x = std::strtod(name.c_str() + prefix, &end);
    if (end == name.c_str() + prefix || *end != 0 || !std::isfinite(x) || x < 0 ||
        (!allow_zero && x == 0)) {
      fail("cache policy '{}': expected {}", name, expected);
    }
    return x;
  };
  if (name == "lru") return make_lru(n_ids);
  if (name == "lfu") return make_lfu(n_ids, seed, 0);
  if (name.starts_with("lfu:"))
    return make_lfu(n_ids, seed,
                    number_after(4, false, "lfu:HALF_LIFE with a positive number of steps"));
  for (const char* base : {"cycle", "cycle-rate", "cycle-temporal", "cycle-nohint"}) {
    const std::string b = base;
    if (name != b && !name.starts_with(b + ":")) continue;
    CycleOptions o;
    o.temporal = b != "cycle-rate";
    o.co_occurrence = b == "cycle" || b == "cycle-nohint";
    o.hints = b == "cycle";
    if (name.size() > b.size())
      o.half_life_tokens = number_after(
          b.size() + 1, true, (b + ":HALF_LIFE with a number of tokens (0: no decay)").c_str());
    return make_cycle(n_layer, n_expert, o, seed);
  }
  fail(
      "unknown cache policy '{}' (expected lru, lfu, lfu:HALF_LIFE, cycle, cycle:HALF_LIFE, "
      "cycle-rate, cycle-temporal or cycle-nohint; belady exists only in cachesim)",
      name);
}

}  // namespace mcmoe::offload
