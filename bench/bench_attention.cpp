// Attention microbenchmarks (Google Benchmark), the shape of bench/speed.sh's 2.25 B model
// (16 query heads, 4 key/value heads, head_dim 128):
//
//   ./build/mcmoe_microbench --benchmark_filter='Attention'
//
// - AttentionPrefill/tokens/threads: a causal prefill of `tokens` queries from an empty
//   cache, as FLOP/s (4 · head_dim · n_head · tokens² / 2 per iteration: Q·Kᵀ and P·V over
//   the visible half). Compare with Prefill's matmul FLOP/s from the same run.
// - AttentionDecode/cache/ctx/threads: one query token against a cache of `ctx` positions in
//   the session's head-major layout, as bytes/s of cache read (keys and values of every
//   position, in the cache type: 0 f32, 1 f16, 2 q8_0). Eight layers' caches are used in
//   turn, so from 4k on these are DRAM numbers; compare with ReadBandwidth of the same run.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "ops/attention.h"
#include "ops/kv_rows.h"

namespace {

using mcmoe::DType;

constexpr int kHeads = 16, kHeadsKv = 4, kHeadDim = 128;
constexpr DType kCacheTypes[] = {DType::F32, DType::F16, DType::Q8_0};

mcmoe::ThreadPool& attention_pool(int threads) {
  static std::unique_ptr<mcmoe::ThreadPool> pools[3];
  if (!pools[threads]) pools[threads] = std::make_unique<mcmoe::ThreadPool>(threads);
  return *pools[threads];
}

std::vector<float> normal_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Rows of f32 values stored in `type`.
std::vector<uint8_t> cache_rows(DType type, const std::vector<float>& rows, int64_t width) {
  const int64_t n = static_cast<int64_t>(rows.size()) / width;
  const size_t row = mcmoe::row_bytes(type, width);
  std::vector<uint8_t> out(row * static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    mcmoe::ops::kv_row_from_f32(type, rows.data() + j * width, width, out.data() + j * row);
  return out;
}

void BM_AttentionPrefill(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const int64_t kv = kHeadsKv * kHeadDim;
  const std::vector<float> q = normal_floats(static_cast<size_t>(n * kHeads * kHeadDim), 1),
                           k = normal_floats(static_cast<size_t>(n * kv), 2),
                           v = normal_floats(static_cast<size_t>(n * kv), 3);
  std::vector<float> out(q.size());
  mcmoe::ops::AttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.out = out.data();
  p.k_stride = p.v_stride = kHeadDim;  // head-major, as the session stores them
  p.k_head_stride = p.v_head_stride = n * kHeadDim;
  p.n_tokens = n;
  p.n_head = kHeads;
  p.n_head_kv = kHeadsKv;
  p.head_dim = kHeadDim;
  for (auto _ : state) {
    mcmoe::ops::attention(p, attention_pool(threads));
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 4.0 * kHeadDim * kHeads * (static_cast<double>(n) * (n + 1) / 2);
  state.counters["FLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AttentionPrefill)
    ->ArgNames({"tokens", "threads"})
    ->ArgsProduct({{512, 2048, 4096}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_AttentionDecode(benchmark::State& state) {
  const DType type = kCacheTypes[state.range(0)];
  const int64_t ctx = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const int64_t kv = kHeadsKv * kHeadDim;
  const std::vector<float> q = normal_floats(static_cast<size_t>(kHeads * kHeadDim), 1);
  // Eight layers' caches used in turn, so each call reads its cache from DRAM as decode does.
  constexpr int kLayers = 8;
  std::vector<std::vector<uint8_t>> k, v;
  for (int l = 0; l < kLayers; ++l) {
    k.push_back(cache_rows(type, normal_floats(static_cast<size_t>(ctx * kv), 2 + l), kv));
    v.push_back(cache_rows(type, normal_floats(static_cast<size_t>(ctx * kv), 20 + l), kv));
  }
  std::vector<float> out(q.size());
  mcmoe::ops::AttentionParams p;
  p.q = q.data();
  p.kv_type = type;
  p.out = out.data();
  // Head-major rows, as the session stores them: each head's keys are one contiguous run.
  p.k_stride = p.v_stride = kHeadDim;
  p.k_head_stride = p.v_head_stride = ctx * kHeadDim;
  p.n_tokens = 1;
  p.pos0 = ctx - 1;
  p.n_head = kHeads;
  p.n_head_kv = kHeadsKv;
  p.head_dim = kHeadDim;
  int layer = 0;
  for (auto _ : state) {
    p.k = k[layer].data();
    p.v = v[layer].data();
    layer = (layer + 1) % kLayers;
    mcmoe::ops::attention(p, attention_pool(threads));
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes/s"] = benchmark::Counter(
      2.0 * static_cast<double>(k[0].size()) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(mcmoe::dtype_name(type)));
}
BENCHMARK(BM_AttentionDecode)
    ->ArgNames({"cache", "ctx", "threads"})
    ->ArgsProduct({{0, 1, 2}, {512, 4096, 16384}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
