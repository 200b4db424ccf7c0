// Linear-layer microbenchmarks (Google Benchmark).
//
//   ./build/mcmoe_microbench --benchmark_filter='Matvec|Prefill|ReadBandwidth'
//   MCMOE_BENCH_ISA=avx2 ./build/mcmoe_microbench ...   (force a kernel path)
//
// - ReadBandwidth/threads: a plain streaming read of 1 GiB, the roofline for decode.
// - Matvec/fmt/rows/cols/threads: one token against a rows × cols weight, reported as bytes/s
//   of weight read. The weight is copied until the copies fill 1 GiB and each iteration uses
//   the next copy, so the numbers are DRAM numbers, not cache numbers (a 4096 × 4096 Q4_0
//   matrix alone would fit in L3).
// - Prefill/fmt/cols/threads: 512 tokens against a 4096 × cols weight, reported as FLOP/s
//   (2 · rows · cols · tokens per iteration).
// - MatvecMQ / PrefillMQ: the same for mcmoe's mq2/mq3/mq4_g128 next to Q4_0.
// - MatvecMXFP4 / MatvecMXFP4Hot: MXFP4 next to Q4_0, from DRAM and with one copy reused.
// Results and the machine they were taken on: bench/RESULTS_matmul.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "ops/matmul.h"
#include "quant/quantize.h"

namespace {

using mcmoe::DType;
using mcmoe::TensorView;
using mcmoe::ThreadPool;

constexpr size_t kWorkingSet = size_t{1} << 30;  // 1 GiB, well past any cache

// Indices 0-4 are the formats every benchmark below runs; 5-7 (mcmoe low-bit) only
// MatvecMQ / PrefillMQ; 8 (MXFP4) only MatvecMXFP4 / MatvecMXFP4Hot.
const DType kFormats[] = {DType::F32,      DType::F16,      DType::BF16,
                          DType::Q8_0,     DType::Q4_0,     DType::MQ2_G128,
                          DType::MQ3_G128, DType::MQ4_G128, DType::MXFP4};

// MCMOE_BENCH_ISA=scalar|avx2|avx512 forces a kernel path (default: the best this CPU runs).
const bool kIsaForced = [] {
  const char* name = std::getenv("MCMOE_BENCH_ISA");
  const auto isa = name ? mcmoe::kernels::isa_from_name(name) : std::nullopt;
  if (isa) mcmoe::kernels::set_isa_override(isa);
  return isa.has_value();
}();

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// `copies` copies of one random rows × cols matrix in `type`, back to back.
struct WeightSet {
  std::vector<uint8_t> bytes;
  std::vector<TensorView> views;
  size_t matrix_bytes = 0;
};

WeightSet build_weights(DType type, int64_t rows, int64_t cols, size_t min_total) {
  WeightSet s;
  const size_t rb = mcmoe::row_bytes(type, cols);
  s.matrix_bytes = rb * static_cast<size_t>(rows);
  const size_t copies = std::max<size_t>(1, (min_total + s.matrix_bytes - 1) / s.matrix_bytes);
  s.bytes.resize(s.matrix_bytes * copies);
  const std::vector<float> row = random_floats(static_cast<size_t>(cols) * 16, 42);
  for (int64_t r = 0; r < rows; ++r) {
    mcmoe::quant::quantize_row(type, row.data() + static_cast<size_t>(r % 16) * cols,
                               s.bytes.data() + r * rb, cols);
  }
  for (size_t c = 1; c < copies; ++c) {
    std::memcpy(s.bytes.data() + c * s.matrix_bytes, s.bytes.data(), s.matrix_bytes);
  }
  for (size_t c = 0; c < copies; ++c) {
    TensorView v;
    v.type = type;
    v.shape = {rows, cols};
    v.data = s.bytes.data() + c * s.matrix_bytes;
    v.nbytes = s.matrix_bytes;
    s.views.push_back(v);
  }
  return s;
}

// Google Benchmark calls a benchmark function several times while it settles the iteration
// count; keep the last weight set (up to 1 GiB) instead of rebuilding it each time.
const WeightSet& make_weights(DType type, int64_t rows, int64_t cols, size_t min_total) {
  static std::unique_ptr<WeightSet> cached;
  static DType c_type;
  static int64_t c_rows = -1, c_cols = -1;
  static size_t c_total = 0;
  if (!cached || c_type != type || c_rows != rows || c_cols != cols || c_total != min_total) {
    cached.reset();  // free the old set before building the next
    cached = std::make_unique<WeightSet>(build_weights(type, rows, cols, min_total));
    c_type = type;
    c_rows = rows;
    c_cols = cols;
    c_total = min_total;
  }
  return *cached;
}

// Sum of 64-byte vectors (GCC vector extension: SSE2 at the baseline ISA), four independent
// accumulators so the loop is bound by loads, not by adds.
using V8 = uint64_t __attribute__((vector_size(64)));

void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int64_t n = static_cast<int64_t>(kWorkingSet / sizeof(V8));
  std::unique_ptr<V8[]> buf(new V8[static_cast<size_t>(n)]);
  for (int64_t i = 0; i < n; ++i) buf[i] = V8{} + static_cast<uint64_t>(i);
  V8 sink[16] = {};
  for (auto _ : state) {
    pool(threads).parallel_for(n, 1024, [&](int64_t b, int64_t e) {
      V8 a0{}, a1{}, a2{}, a3{};
      for (int64_t i = b; i + 4 <= e; i += 4) {
        a0 += buf[i];
        a1 += buf[i + 1];
        a2 += buf[i + 2];
        a3 += buf[i + 3];
      }
      sink[b * 16 / n] += a0 + a1 + a2 + a3;
    });
    benchmark::DoNotOptimize(sink);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kWorkingSet));
}
BENCHMARK(BM_ReadBandwidth)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Args: format index, rows, cols, threads. hot: one copy of the weight, used again each
// iteration (partly cache-resident, as ggml's test-backend-ops perf measures).
void run_matvec(benchmark::State& state, bool hot) {
  const DType type = kFormats[state.range(0)];
  const int64_t rows = state.range(1), cols = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const WeightSet& ws = make_weights(type, rows, cols, hot ? 0 : kWorkingSet);
  const std::vector<float> x = random_floats(static_cast<size_t>(cols), 1);
  std::vector<float> y(static_cast<size_t>(rows));
  size_t i = 0;
  for (auto _ : state) {
    mcmoe::ops::matmul(ws.views[i], x.data(), 1, y.data(), pool(threads));
    benchmark::DoNotOptimize(y.data());
    if (++i == ws.views.size()) i = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(ws.matrix_bytes));
  state.SetLabel(std::string(mcmoe::dtype_name(type)) + " " +
                 mcmoe::kernels::isa_name(mcmoe::kernels::active_kernels().isa));
}

void BM_Matvec(benchmark::State& state) {
  run_matvec(state, false);
}
void BM_MatvecHot(benchmark::State& state) {
  run_matvec(state, true);
}

// 4096 x 4096 (attention-sized), 14336 x 4096 (Mixtral/Llama-3 FFN up) and 4096 x 14336
// (FFN down; also the shape of llama.cpp's test-backend-ops perf MUL_MAT case).
void matvec_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fmt", "rows", "cols", "threads"});
  for (int64_t f = 0; f < 5; ++f) {
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{4096, 4096}, {14336, 4096}, {4096, 14336}}) {
      for (int64_t threads : {1, 2}) b->Args({f, rows, cols, threads});
    }
  }
}
BENCHMARK(BM_Matvec)->Apply(matvec_args)->UseRealTime()->Unit(benchmark::kMicrosecond);

// mcmoe's low-bit formats (mq2/3/4_g128) next to Q4_0 on the FFN-down shape.
void mq_matvec_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fmt", "rows", "cols", "threads"});
  for (int64_t f : {4, 5, 6, 7}) {
    for (int64_t threads : {1, 2}) b->Args({f, 4096, 14336, threads});
  }
}
BENCHMARK(BM_Matvec)
    ->Name("MatvecMQ")
    ->Apply(mq_matvec_args)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// MXFP4 (gpt-oss's experts) next to Q4_0 on the FFN-down shape, from DRAM and hot.
void mxfp4_matvec_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fmt", "rows", "cols", "threads"});
  for (int64_t f : {4, 8}) {
    for (int64_t threads : {1, 2}) b->Args({f, 4096, 14336, threads});
  }
}
BENCHMARK(BM_Matvec)
    ->Name("MatvecMXFP4")
    ->Apply(mxfp4_matvec_args)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatvecHot)
    ->Name("MatvecMXFP4Hot")
    ->Apply(mxfp4_matvec_args)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Args: format index, cols, threads. 512 tokens × 4096 rows × cols.
void BM_Prefill(benchmark::State& state) {
  const DType type = kFormats[state.range(0)];
  const int64_t cols = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  constexpr int64_t kRows = 4096, kTokens = 512;
  const WeightSet& ws = make_weights(type, kRows, cols, 0);
  const std::vector<float> x = random_floats(static_cast<size_t>(kTokens * cols), 2);
  std::vector<float> y(static_cast<size_t>(kTokens * kRows));
  for (auto _ : state) {
    mcmoe::ops::matmul(ws.views[0], x.data(), kTokens, y.data(), pool(threads));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * kRows * static_cast<double>(cols) * kTokens * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.SetLabel(std::string(mcmoe::dtype_name(type)) + " " +
                 mcmoe::kernels::isa_name(mcmoe::kernels::active_kernels().isa));
}
BENCHMARK(BM_Prefill)
    ->ArgNames({"fmt", "cols", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4}, {4096, 14336}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill)
    ->Name("PrefillMQ")
    ->ArgNames({"fmt", "cols", "threads"})
    ->ArgsProduct({{4, 5, 6, 7}, {14336}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
