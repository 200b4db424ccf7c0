#pragma once
// Prefill with float weights through OpenBLAS's sgemm, where a packed, cache-blocked GEMM
// beats our register-tiled kernels (KernelSet::blas_min_tokens says where, per ISA). F16 /
// BF16 rows are widened to f32 in panels first; the widening is O(rows · cols), the product
// O(rows · cols · tokens).
#include "kernels/kernels.h"

namespace mcmoe::kernels {

// Same contract as KernelSet::gemm for F32 / F16 / BF16 weights (x holds f32 rows). Runs
// single-threaded on the calling thread: the caller splits rows across its own pool, and
// OpenBLAS's own threads are switched off at first use so the two never oversubscribe.
void gemm_blas(const KernelSet& ks, WFormat format, const GemmArgs& args);

}  // namespace mcmoe::kernels
