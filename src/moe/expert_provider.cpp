#include "moe/expert_provider.h"

#include <fmt/format.h>

#include "quant/block_check.h"

namespace mcmoe::moe {

void check_expert_scales(const ExpertWeights& w, std::string_view what) {
  const std::pair<const TensorView*, const char*> parts[] = {
      {&w.gate, "gate"},
      {&w.up, "up"},
      {&w.down, "down"},
      {&w.gate_lr.left, "gate low-rank L"},
      {&w.gate_lr.right, "gate low-rank R"},
      {&w.gate_lr.sparse, "gate sparse rows"},
      {&w.up_lr.left, "up low-rank L"},
      {&w.up_lr.right, "up low-rank R"},
      {&w.up_lr.sparse, "up sparse rows"},
      {&w.down_lr.left, "down low-rank L"},
      {&w.down_lr.right, "down low-rank R"},
      {&w.down_lr.sparse, "down sparse rows"},
  };
  for (const auto& [view, name] : parts) {
    if (view->valid()) quant::check_scales(*view, fmt::format("{} ({})", what, name));
  }
}

ResidentExpertProvider::ResidentExpertProvider(std::vector<std::vector<ExpertWeights>> experts,
                                               std::string check_path)
    : experts_(std::move(experts)), check_path_(std::move(check_path)) {
  if (check_path_.empty()) return;
  for (const auto& layer : experts_) {
    checked_.push_back(std::make_unique<std::atomic<bool>[]>(layer.size()));
  }
}

void ResidentExpertProvider::check_once(int layer, int expert) {
  std::atomic<bool>& done = checked_[layer][expert];
  if (done.load(std::memory_order_acquire)) return;
  check_expert_scales(experts_[layer][expert],
                      fmt::format("{}: expert {} of layer {}", check_path_, expert, layer));
  done.store(true, std::memory_order_release);
}

}  // namespace mcmoe::moe
