// Block-fitter microbenchmarks (Google Benchmark): quant::fit_block, the grid search that
// quantize --format gguf runs for every block of every candidate type (GPTQ included), on
// normal weights with and without an importance vector:
//
//   ./build/mcmoe_microbench --benchmark_filter='FitBlock'
//
// Reported as blocks/s (256 weights each, 32 for the legacy types) on one thread.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/ggml_encode.h"

namespace {

using mcmoe::DType;

constexpr DType kFitTypes[] = {DType::Q2_K,   DType::Q3_K,    DType::Q4_K,   DType::Q5_K,
                               DType::Q6_K,   DType::Q4_0,    DType::Q8_0,   DType::IQ4_NL,
                               DType::IQ4_XS, DType::IQ2_XXS, DType::IQ3_XXS};
constexpr int kBlocks = 64;

void FitBlock(benchmark::State& state) {
  const DType type = kFitTypes[state.range(0)];
  const bool with_importance = state.range(1) != 0;
  const int block = static_cast<int>(mcmoe::dtype_traits(type).block_size);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.1f, 2.f);
  std::vector<float> x(static_cast<size_t>(kBlocks) * block), imp(x.size());
  for (auto& v : x) v = normal(rng);
  for (auto& v : imp) v = uniform(rng);
  mcmoe::quant::IntBlock out;
  for (auto _ : state) {
    for (int k = 0; k < kBlocks; ++k) {
      mcmoe::quant::fit_block(type, x.data() + k * block,
                              with_importance ? imp.data() + k * block : nullptr, &out);
      benchmark::DoNotOptimize(out);
    }
  }
  state.SetLabel(std::string(mcmoe::dtype_name(type)) + (with_importance ? " imp" : ""));
  state.SetItemsProcessed(state.iterations() * kBlocks);
}

BENCHMARK(FitBlock)
    ->ArgsProduct({benchmark::CreateDenseRange(0, std::size(kFitTypes) - 1, 1), {0, 1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
