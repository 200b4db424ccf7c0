#include "offload/offload_test_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <unistd.h>

#include "common/test_util.h"
#include "model/session.h"
#include "offload/expert_layout.h"
#include "offload/trace.h"

namespace mcmoe::test {

namespace {

// A directory removed at exit: in /dev/shm when there is one (reads of a file there cost a
// memcpy, not a disk request, which keeps the many cache misses of these tests cheap; tmpfs
// refuses O_DIRECT, so the reader takes its buffered path), else in the temp dir.
class ScratchDir {
 public:
  explicit ScratchDir(bool memory) {
    std::random_device rd;
    const std::string name = "mcmoe_offload_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd());
    std::error_code ec;
    const bool shm = memory && std::filesystem::is_directory("/dev/shm", ec);
    dir_ = (shm ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path()) / name;
    std::filesystem::create_directories(dir_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

const ScratchDir& memory_scratch() {
  static const ScratchDir dir(true);
  return dir;
}

std::string synth_small(const std::string& path) {
  api::SynthOptions o = synth_options(4, 128, 256, 8);
  o.seed = 7;
  api::synth_model(o, path);
  return path;
}

}  // namespace

api::SynthOptions synth_options(int layers, int dim, int ff, int experts) {
  api::SynthOptions o;
  o.layers = layers;
  o.dim = dim;
  o.ff = ff;
  o.experts = experts;
  o.top_k = 2;
  o.vocab = 300;
  o.type = DType::Q8_0;
  return o;
}

std::string offload_scratch_path(const std::string& name) { return memory_scratch().path(name); }

const std::string& small_offload_model() {
  static const std::string path = synth_small(memory_scratch().path("small-q8_0.gguf"));
  return path;
}

const std::string& small_offload_model_on_disk() {
  static const ScratchDir dir(false);
  static const std::string path = [] {
    const std::string p = dir.path("small-q8_0.gguf");
    std::filesystem::copy_file(small_offload_model(), p);
    return p;
  }();
  return path;
}

std::unique_ptr<model::Model> load_offloaded(const std::string& path, const offload::OffloadOptions& o,
                                             offload::OffloadingProvider** provider) {
  auto m = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  auto p = std::make_unique<offload::OffloadingProvider>(*m, o);
  if (provider) *provider = p.get();
  m->set_expert_provider(std::move(p));
  return m;
}

offload::OffloadOptions offload_options(const std::string& policy, uint64_t budget, int prefetch) {
  offload::OffloadOptions o;
  o.policy = policy;
  o.budget = budget;
  o.prefetch_depth = prefetch;
  o.prefetch_m = 2;
  o.prefetch_min_recall = 0;
  return o;
}

uint64_t max_expert_bytes(model::Model& m) {
  const std::vector<uint64_t> b = offload::expert_cache_bytes(m);
  return *std::max_element(b.begin(), b.end());
}

uint64_t one_expert_budget(model::Model& m) { return max_expert_bytes(m) + 6 * 4096; }

uint64_t total_expert_bytes(model::Model& m) {
  const std::vector<uint64_t> b = offload::expert_cache_bytes(m);
  return std::accumulate(b.begin(), b.end(), uint64_t{0});
}

std::vector<int32_t> test_tokens(int vocab) {
  std::mt19937 rng(21);
  std::vector<int32_t> t(24);
  for (auto& x : t) x = static_cast<int32_t>(3 + rng() % (vocab - 3));
  return t;
}

std::vector<float> run_logits(model::Model& m, const std::vector<int32_t>& tokens,
                              const std::function<void()>& after_each_eval,
                              const std::function<void(model::SessionOptions&)>& so_tweak) {
  model::SessionOptions so;
  so.n_ctx = 64;
  so.n_threads = 2;
  so.n_batch = 8;
  if (so_tweak) so_tweak(so);
  model::Session s(m, so);
  std::vector<float> out;
  const auto pre = s.eval(std::span<const int32_t>(tokens.data(), kPrefill), true);
  out.insert(out.end(), pre.begin(), pre.end());
  if (after_each_eval) after_each_eval();
  for (size_t i = kPrefill; i < tokens.size(); ++i) {
    const auto l = s.eval(std::span<const int32_t>(&tokens[i], 1), false);
    out.insert(out.end(), l.begin(), l.end());
    if (after_each_eval) after_each_eval();
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

Watchdog::Watchdog(std::string what, std::chrono::seconds limit)
    : thread_([this, what = std::move(what), limit] {
        std::unique_lock<std::mutex> lock(mu_);
        if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
          std::fprintf(stderr, "HANG: %s did not finish within %lld s\n", what.c_str(), static_cast<long long>(limit.count()));
          std::fflush(stderr);
          std::_Exit(3);
        }
      }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace mcmoe::test
