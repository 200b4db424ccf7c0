// AVX-512 activation quantizer: f32 row → int8 blocks in the kInterleave4 layout that
// dot_q_avx512.cpp reads. Bit-identical to quantize_acts_ref (same operations in the same
// order, rounding emulated exactly), which tests/kernels/ check with memcmp.
//
// Why hand-written intrinsics rather than Highway (the project's SIMD library): Highway 1.0.3
// (Debian 12) has no int8 dot-product op (vpdpbusd / maddubs), which the quantized kernels
// are built on, so the quantized path and its activation format are written per ISA.
// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of unmasked
// intrinsics (_mm512_cvtph_ps, _mm512_reduce_add_ps), which -Wuninitialized reports once
// inlined (GCC bug 105593, fixed in GCC 13). The values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"

namespace mcmoe::kernels::avx512 {

namespace {

// lround() semantics (half away from zero) for |v| < 2^23: truncate, then step one away
// from zero when the dropped fraction is at least one half. v - trunc(v) is exact, so this
// matches the scalar reference on every input, ties included (cvtps rounds ties to even).
inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  const __mmask16 step = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one =
      _mm512_or_ps(_mm512_set1_ps(1.f), _mm512_and_ps(v, _mm512_set1_ps(-0.f)));  // ±1 like v
  return _mm512_mask_add_ps(t, step, t, one);
}

}  // namespace

void quantize_acts(const float* x, int64_t cols, void* dst) {
  const ActRowLayout l = act_row_layout(cols);
  auto* base = static_cast<uint8_t*>(dst);
  auto* codes = reinterpret_cast<int8_t*>(base);
  auto* d_out = reinterpret_cast<float*>(base + l.d_off);
  auto* sd_out = reinterpret_cast<float*>(base + l.sd_off);
  auto* dx4_out = reinterpret_cast<float*>(base + l.dx4_off);
  auto* nq4_out = reinterpret_cast<int32_t*>(base + l.nq4_off);
  // Zero the padding blocks only; real blocks are fully written below. A partial group of 4
  // leaves holes in its 128 code bytes, so zero from that group's start.
  const int64_t first_pad_group = l.nb / 4;
  std::memset(codes + first_pad_group * 128, 0,
              static_cast<size_t>(l.nbp * 32 - first_pad_group * 128));
  const size_t pad = static_cast<size_t>(l.nbp - l.nb);
  std::memset(d_out + l.nb, 0, pad * 4);
  std::memset(sd_out + l.nb, 0, pad * 4);
  std::memset(dx4_out + l.nb * 4, 0, pad * 16);
  std::memset(nq4_out + l.nb * 4, 0, pad * 16);

  for (int64_t b = 0; b < l.nb; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * 32);
    const __m512 v1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, vid)));
    const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, vid)));
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    int8_t* lo = codes + (b / 4) * 128 + (b % 4) * 16;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + 64), _mm512_cvtepi32_epi8(q1));
    d_out[b] = d;
    sd_out[b] = d * static_cast<float>(sum);
    _mm_storeu_ps(dx4_out + b * 4, _mm_set1_ps(d));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(nq4_out + b * 4), _mm_set1_epi32(-sum));
  }
}

}  // namespace mcmoe::kernels::avx512
