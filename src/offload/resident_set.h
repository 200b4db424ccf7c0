#pragma once
// Byte accounting of a cache of experts: which ids are resident, in which pool (one global
// pool, or one per layer), and eviction until a new expert fits. Shared by the live cache
// and the simulator so both obey the same budget rule.
#include <cstdint>
#include <functional>
#include <vector>

#include "offload/cache_policy.h"

namespace mcmoe::offload {

class ResidentSet {
 public:
  // sizes[id] in bytes; pool_of[id] names the pool id is charged to; pool_budget[p] bytes.
  ResidentSet(std::vector<uint64_t> sizes, std::vector<int> pool_of, std::vector<uint64_t> pool_budget);

  // One pool holding `budget` bytes, or one pool per layer with `budget` split in proportion
  // to each layer's expert bytes (ids are layer * n_expert + expert).
  static ResidentSet make(const std::vector<uint64_t>& sizes, int n_expert, uint64_t budget, bool per_layer);

  bool resident(int id) const { return resident_[id] != 0; }
  uint64_t size(int id) const { return sizes_[id]; }
  uint64_t used() const { return used_total_; }
  uint64_t budget() const { return budget_total_; }
  uint64_t pool_budget(int id) const { return pool_budget_[pool_of_[id]]; }
  const std::vector<int>& residents() const { return list_; }

  // Evicts, in the policy's order among residents of id's pool for which evictable(x) is
  // true, until id fits; evicted ids are appended to `evicted` (and removed). Returns false,
  // evicting nothing, when id cannot fit even after evicting every evictable resident.
  bool make_room(int id, const CachePolicy& policy, uint64_t clock, const std::function<bool(int)>& evictable,
                 std::vector<int>& evicted);
  void insert(int id);
  void erase(int id);

 private:
  std::vector<uint64_t> sizes_;
  std::vector<int> pool_of_;
  std::vector<uint64_t> pool_budget_, pool_used_;
  uint64_t used_total_ = 0, budget_total_ = 0;
  std::vector<uint8_t> resident_;
  std::vector<int> list_;  // resident ids, unordered
  std::vector<int> candidates_;  // scratch
};

}  // namespace mcmoe::offload
