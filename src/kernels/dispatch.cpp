#include "kernels/dispatch.h"

#include <atomic>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/error.h"
#include "kernels/kernel_sets.h"
#include "quant/iquants.h"
#include "quant/kquants.h"
#include "quant/lowbit.h"

namespace mcmoe::kernels {

namespace {

#define MCMOE_SET(ns, isa_value, layout, blas_f32, blas_f16, blas_bf16)                \
  KernelSet {                                                                          \
    .isa = isa_value, .act_layout = layout, .quantize_acts = ns::quantize_acts,        \
    .row_to_f32 = {ns::f32_to_f32, ns::f16_to_f32, ns::bf16_to_f32},                   \
    .gemm = {ns::gemm_f32, ns::gemm_f16, ns::gemm_bf16, ns::gemm_q8_0, ns::gemm_q4_0,   \
             ns::gemm_mq, ns::gemm_kq, ns::gemm_iq},                                                \
    .blas_min_tokens = {blas_f32, blas_f16, blas_bf16},                                \
  }

// Index = static_cast<int>(Isa). The AVX-512 quantized kernel keeps 4 blocks per register,
// hence its interleaved activation layout (kernels.h).
// OpenBLAS for float prefill (>= 32 tokens) where it measured faster on the 2-core Zen 5
// dev machine with Debian's OpenBLAS 0.3.21, which runs its Haswell (AVX2) kernels there
// (bench/RESULTS_matmul.md): always against the scalar path; against AVX2 for F32 (~70 vs
// ~40 GFLOP/s: our 4×2 tile is L2-bound on f32 rows), while F16 / BF16 tie; never against
// AVX-512, whose kernels beat it for every float format (F32 ~1.1x, F16 / BF16 ~1.5-2x).
const KernelSet kSets[kNumIsas] = {
    MCMOE_SET(scalar, Isa::kScalar, ActLayout::kNatural, 32, 32, 32),
    MCMOE_SET(avx2, Isa::kAvx2, ActLayout::kNatural, 32, kNoBlas, kNoBlas),
    MCMOE_SET(avx512, Isa::kAvx512, ActLayout::kInterleave4, kNoBlas, kNoBlas, kNoBlas),
};
#undef MCMOE_SET

// -1: automatic.
std::atomic<int> g_override{-1};
std::atomic<bool> g_batch_invariant{false};

#if defined(__x86_64__) || defined(__i386__)
// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#endif

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case Isa::kAvx512:
      // What dot_*_avx512.cpp use: F and BW (byte and 16-bit ops), VL, DQ, VNNI (vpdpbusd),
      // plus FMA / F16C, which every AVX-512 CPU has but CPUID reports separately.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
             cpu_has_f16c();
  }
  return false;
#else
  return isa == Isa::kScalar;
#endif
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (name == isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return std::nullopt;
}

bool wformat_of(DType type, WFormat* out) {
  switch (type) {
    case DType::F32:
      *out = WFormat::kF32;
      return true;
    case DType::F16:
      *out = WFormat::kF16;
      return true;
    case DType::BF16:
      *out = WFormat::kBF16;
      return true;
    case DType::Q8_0:
      *out = WFormat::kQ8_0;
      return true;
    case DType::Q4_0:
      *out = WFormat::kQ4_0;
      return true;
    MCMOE_CASE_MQ_TYPES:
      *out = WFormat::kMQ;
      return true;
    MCMOE_CASE_KQ_TYPES:
      *out = WFormat::kKQ;
      return true;
    MCMOE_CASE_IQ_TYPES:
      *out = WFormat::kIQ;
      return true;
    default:
      return false;
  }
  return false;
}

bool isa_supported(Isa isa) {
  static const bool supported[kNumIsas] = {cpu_supports(Isa::kScalar), cpu_supports(Isa::kAvx2),
                                           cpu_supports(Isa::kAvx512)};
  return supported[static_cast<int>(isa)];
}

Isa best_isa() {
  static const Isa best = isa_supported(Isa::kAvx512) ? Isa::kAvx512
                          : isa_supported(Isa::kAvx2) ? Isa::kAvx2
                                                      : Isa::kScalar;
  return best;
}

const KernelSet& kernels_for(Isa isa) {
  if (!isa_supported(isa)) fail("kernels: this CPU cannot run the {} path", isa_name(isa));
  return kSets[static_cast<int>(isa)];
}

const KernelSet& active_kernels() {
  const int o = g_override.load(std::memory_order_relaxed);
  return kSets[o >= 0 ? o : static_cast<int>(best_isa())];
}

void set_isa_override(std::optional<Isa> isa) {
  if (isa && !isa_supported(*isa)) {
    fail("kernels: cannot force the {} path on this CPU", isa_name(*isa));
  }
  g_override.store(isa ? static_cast<int>(*isa) : -1, std::memory_order_relaxed);
}

void set_batch_invariant(bool on) {
  g_batch_invariant.store(on, std::memory_order_relaxed);
}

bool batch_invariant() {
  return g_batch_invariant.load(std::memory_order_relaxed);
}

ScopedIsa::ScopedIsa(Isa isa) {
  const int o = g_override.load(std::memory_order_relaxed);
  if (o >= 0) previous_ = static_cast<Isa>(o);
  set_isa_override(isa);
}

ScopedIsa::~ScopedIsa() {
  g_override.store(previous_ ? static_cast<int>(*previous_) : -1);
}

}  // namespace mcmoe::kernels
