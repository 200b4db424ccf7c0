#pragma once
// Picks the kernel set for this CPU once, at first use, from CPUID. Tests force a path with
// an override so every ISA the machine can run is checked against the scalar reference.
// (Runtime dispatch by hand instead of Highway's: Highway 1.0.3, Debian 12's, has no int8
// dot-product op, so the kernels are hand-written per ISA and dispatched here.)
#include <optional>

#include "kernels/kernels.h"

namespace mcmoe::kernels {

// True when this CPU (and this build) can run the given path.
bool isa_supported(Isa isa);
// The best supported ISA: AVX-512 (F + BW + VL + VNNI), else AVX2 (+ FMA + F16C), else
// scalar.
Isa best_isa();
// The set the ops use: the override when one is set, otherwise best_isa()'s.
const KernelSet& active_kernels();
// The set for one ISA; fails (mcmoe::Error) when the CPU cannot run it.
const KernelSet& kernels_for(Isa isa);

// Forces active_kernels() to a path (nullopt: back to automatic). Not meant to be flipped
// while matmuls run on other threads; tests and benchmarks set it between calls.
void set_isa_override(std::optional<Isa> isa);

// Batch invariance for the float formats too. Off: ISAs whose KernelSet hands float products
// of many tokens to OpenBLAS (blas_min_tokens: scalar and AVX2, for prefill speed) do so,
// and a row's sums then depend on how many rows share the call. On: never OpenBLAS, every
// product goes through gemm[], which gives each row the same bits at any batch size
// (kernels/tile_walk.h). A Session of several sequences turns it on for the process, as it
// promises each sequence the bits it gets alone (model/session.h).
void set_batch_invariant(bool on);
bool batch_invariant();

// Scoped override for tests: restores the previous choice on destruction.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa);
  ~ScopedIsa();
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  std::optional<Isa> previous_;
};

}  // namespace mcmoe::kernels
