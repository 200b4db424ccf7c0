#include "offload/resident_set.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace mcmoe::offload {

ResidentSet::ResidentSet(std::vector<uint64_t> sizes, std::vector<int> pool_of, std::vector<uint64_t> pool_budget)
    : sizes_(std::move(sizes)),
      pool_of_(std::move(pool_of)),
      pool_budget_(std::move(pool_budget)),
      pool_used_(pool_budget_.size(), 0),
      resident_(sizes_.size(), 0) {
  if (pool_of_.size() != sizes_.size()) fail("ResidentSet: {} pool ids for {} experts", pool_of_.size(), sizes_.size());
  for (int p : pool_of_) {
    if (p < 0 || p >= static_cast<int>(pool_budget_.size())) fail("ResidentSet: pool {} out of range", p);
  }
  budget_total_ = std::accumulate(pool_budget_.begin(), pool_budget_.end(), uint64_t{0});
}

ResidentSet ResidentSet::make(const std::vector<uint64_t>& sizes, int n_expert, uint64_t budget, bool per_layer) {
  if (n_expert <= 0 || sizes.size() % static_cast<size_t>(n_expert) != 0) {
    fail("ResidentSet: {} expert sizes is not a multiple of {} experts per layer", sizes.size(), n_expert);
  }
  const int n_layer = static_cast<int>(sizes.size()) / n_expert;
  std::vector<int> pool_of(sizes.size(), 0);
  std::vector<uint64_t> budgets{budget};
  if (per_layer) {
    const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
    budgets.assign(n_layer, 0);
    for (int l = 0; l < n_layer; ++l) {
      uint64_t layer_bytes = 0;
      for (int e = 0; e < n_expert; ++e) {
        pool_of[l * n_expert + e] = l;
        layer_bytes += sizes[l * n_expert + e];
      }
      budgets[l] = total ? static_cast<uint64_t>(static_cast<long double>(budget) * layer_bytes / total) : 0;
    }
  }
  return ResidentSet(sizes, std::move(pool_of), std::move(budgets));
}

bool ResidentSet::make_room(int id, const CachePolicy& policy, uint64_t clock,
                            const std::function<bool(int)>& evictable, std::vector<int>& evicted) {
  const int pool = pool_of_[id];
  if (sizes_[id] > pool_budget_[pool]) return false;
  if (pool_used_[pool] + sizes_[id] <= pool_budget_[pool]) return true;
  candidates_.clear();
  uint64_t freeable = 0;
  for (int r : list_) {
    if (pool_of_[r] == pool && evictable(r)) {
      candidates_.push_back(r);
      freeable += sizes_[r];
    }
  }
  if (pool_used_[pool] - freeable + sizes_[id] > pool_budget_[pool]) return false;
  while (pool_used_[pool] + sizes_[id] > pool_budget_[pool]) {
    const int v = policy.victim(candidates_, clock);
    candidates_.erase(std::find(candidates_.begin(), candidates_.end(), v));
    erase(v);
    evicted.push_back(v);
  }
  return true;
}

void ResidentSet::insert(int id) {
  if (resident_[id]) return;
  resident_[id] = 1;
  list_.push_back(id);
  pool_used_[pool_of_[id]] += sizes_[id];
  used_total_ += sizes_[id];
}

void ResidentSet::erase(int id) {
  if (!resident_[id]) return;
  resident_[id] = 0;
  list_.erase(std::find(list_.begin(), list_.end(), id));
  pool_used_[pool_of_[id]] -= sizes_[id];
  used_total_ -= sizes_[id];
}

}  // namespace mcmoe::offload
