#pragma once
// Shared by the offloading tests: a small synthetic GGUF made once per test binary, a loader
// that installs an OffloadingProvider on a mapped model, and byte facts about its experts.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/synth.h"
#include "model/model.h"
#include "model/session.h"
#include "offload/offload_provider.h"

namespace mcmoe::test {

// Mixtral-style synthetic model options: top-2, vocab 300, Q8_0.
api::SynthOptions synth_options(int layers, int dim, int ff, int experts);

// 4 layers, dim 128, ff 256, 8 experts, top-2, vocab 300, Q8_0 (~3 MiB of experts), written
// once per process into a directory removed at exit: in /dev/shm where there is one (cheap
// reads, buffered path), and a copy on the temp dir's disk (the O_DIRECT path).
const std::string& small_offload_model();
const std::string& small_offload_model_on_disk();
// A path named `name` in the same per-process /dev/shm directory (removed at exit).
std::string offload_scratch_path(const std::string& name);

// Loads `path` mapped (LoadOptions::Memory::kMap) and installs an OffloadingProvider built
// with `o`; *provider (when given) points at it (owned by the model).
std::unique_ptr<model::Model> load_offloaded(const std::string& path, const offload::OffloadOptions& o,
                                             offload::OffloadingProvider** provider = nullptr);

// Options for the tests: policy, budget, prefetch depth (top-2), and prefetch kept running
// whatever its recall (random routers guess badly).
offload::OffloadOptions offload_options(const std::string& policy, uint64_t budget, int prefetch);

// Stored bytes of the largest expert, and the budget that holds exactly one expert of the
// cache (which charges whole 4 KiB pages: each of an expert's three tensors can gain up to
// two partial pages, so largest + 6 pages always fits one).
uint64_t max_expert_bytes(model::Model& m);
uint64_t one_expert_budget(model::Model& m);
uint64_t total_expert_bytes(model::Model& m);

// 24 random token ids below `vocab` (fixed seed): a prefill of kPrefill, then decode steps.
inline constexpr size_t kPrefill = 16;
std::vector<int32_t> test_tokens(int vocab);
// A prefill of kPrefill tokens (two forward chunks of n_batch 8, all logits), then one
// single-token decode step per remaining token; every logit of every step, concatenated.
// after_each_eval (optional) runs after every eval: where a test inspects the cache.
// so_tweak (optional) changes the session's options (an observer, cache-aware routing).
std::vector<float> run_logits(model::Model& m, const std::vector<int32_t>& tokens,
                              const std::function<void()>& after_each_eval = {},
                              const std::function<void(model::SessionOptions&)>& so_tweak = {});
bool same_bits(const std::vector<float>& a, const std::vector<float>& b);

// Turns a hang into a failure: if not destroyed within `limit`, prints what hung and ends the
// process with exit code 3 (a test cannot be cancelled from another thread).
class Watchdog {
 public:
  Watchdog(std::string what, std::chrono::seconds limit);
  ~Watchdog();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace mcmoe::test
