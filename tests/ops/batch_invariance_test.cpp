// Batch invariance of the products: a token's row of Y = X·Wᵀ must not depend on which
// other rows share the call. The server decodes several sequences in one forward step and
// promises each the text it would get alone, which holds only if every per-row op is
// invariant to its batch (kernels/tile_walk.h says how the kernels keep it). Checked bit for
// bit for every weight format mcmoe can write, on every ISA this CPU runs, with rows wider
// than one prefill column chunk.
#include <gtest/gtest.h>

#include <cstring>

#include "../kernels/matmul_test_util.h"

namespace mcmoe {
namespace {

TEST(BatchInvariance, EveryFormatGivesEachRowTheSameBitsAtAnyBatchSize) {
  ThreadPool pool(2);
  const int64_t rows = 40, cols = 8704;  // > 2 column chunks of 4096
  const int64_t max_tokens = 70;
  const std::vector<float> x = test::random_floats(static_cast<size_t>(max_tokens * cols), 11);
  for (kernels::Isa isa : test::supported_isas()) {
    kernels::ScopedIsa force(isa);
    for (DType type : kAllDTypes) {
      kernels::WFormat f;
      if (!kernels::wformat_of(type, &f) || cols % dtype_traits(type).block_size != 0) continue;
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " " + std::string(dtype_name(type)));
      test::OwnedWeight w;
      try {
        w = test::make_weight(type, rows, cols, 7);
      } catch (const std::exception&) {
        continue;  // a format mcmoe reads but does not write (q4_1, ...): no random weights
      }
      // The exception: ISAs that hand float products of many tokens to OpenBLAS
      // (KernelSet::blas_min_tokens; never on AVX-512) are invariant below that count only.
      const int64_t blas_from = static_cast<int>(f) < 3
                                    ? kernels::kernels_for(isa).blas_min_tokens[static_cast<int>(f)]
                                    : INT64_MAX;
      std::vector<float> single(static_cast<size_t>(max_tokens * rows));
      for (int64_t t = 0; t < max_tokens; ++t) {
        ops::matmul(w.view, x.data() + t * cols, 1, single.data() + t * rows, pool);
      }
      for (int64_t n : {2, 4, 5, 8, 16, 17, 33, 70}) {
        if (n >= blas_from) continue;
        std::vector<float> y(static_cast<size_t>(n * rows));
        ops::matmul(w.view, x.data(), n, y.data(), pool);
        int64_t differing = 0;
        for (int64_t i = 0; i < n * rows; ++i)
          differing += std::memcmp(&y[i], &single[i], sizeof(float)) != 0;
        EXPECT_EQ(differing, 0) << "elements that differ from one-token calls in a batch of " << n;
      }
    }
  }
}

// With batch invariance on (what a Session of several sequences sets), the float formats
// stay off OpenBLAS at any token count, so even batches past blas_min_tokens give each row
// its one-token bits, on every ISA (scalar and AVX2 would otherwise hand them to OpenBLAS).
TEST(BatchInvariance, FloatProductsPastTheBlasThresholdWhenAsked) {
  ThreadPool pool(2);
  const int64_t rows = 24, cols = 1024, n = 40;  // n above every finite blas_min_tokens (32)
  const std::vector<float> x = test::random_floats(static_cast<size_t>(n * cols), 13);
  const bool was = kernels::batch_invariant();
  kernels::set_batch_invariant(true);
  for (kernels::Isa isa : test::supported_isas()) {
    kernels::ScopedIsa force(isa);
    for (DType type : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " " + std::string(dtype_name(type)));
      const test::OwnedWeight w = test::make_weight(type, rows, cols, 5);
      std::vector<float> single(static_cast<size_t>(n * rows)), y(static_cast<size_t>(n * rows));
      for (int64_t t = 0; t < n; ++t)
        ops::matmul(w.view, x.data() + t * cols, 1, single.data() + t * rows, pool);
      ops::matmul(w.view, x.data(), n, y.data(), pool);
      int64_t differing = 0;
      for (int64_t i = 0; i < n * rows; ++i)
        differing += std::memcmp(&y[i], &single[i], sizeof(float)) != 0;
      EXPECT_EQ(differing, 0);
    }
  }
  kernels::set_batch_invariant(was);
}

}  // namespace
}  // namespace mcmoe
