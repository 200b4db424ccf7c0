// AVX2 activation quantizer: f32 row → int8 blocks in the natural layout that
// dot_q_avx2.cpp reads; bit-identical to quantize_acts_ref (tested with memcmp). Hand
// intrinsics: Highway 1.0.3 lacks the int8 dot products the consumers of this format use.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"

namespace mcmoe::kernels::avx2 {

namespace {

// lround() semantics, exactly (see act_avx512.cpp).
inline __m256 round_half_away(__m256 v) {
  const __m256 sign_bit = _mm256_set1_ps(-0.f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
  const __m256 step = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.f), _mm256_and_ps(v, sign_bit));
  return _mm256_add_ps(t, _mm256_and_ps(step, one));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
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
  const size_t pad = static_cast<size_t>(l.nbp - l.nb);
  std::memset(codes + l.nb * 32, 0, pad * 32);
  std::memset(d_out + l.nb, 0, pad * 4);
  std::memset(sd_out + l.nb, 0, pad * 4);
  std::memset(dx4_out + l.nb * 4, 0, pad * 16);
  std::memset(nq4_out + l.nb * 4, 0, pad * 16);

  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < l.nb; ++b) {
    const float* xb = x + b * 32;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    const __m256 m01 = _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask));
    const __m256 m23 = _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask));
    const float amax = hmax(_mm256_max_ps(m01, m23));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[i], vid)));
    const int sum =
        hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    // packs work within 128-bit lanes: the result's 32-bit groups come out as 0 2 4 6 1 3 5 7.
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i ordered =
        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + b * 32), ordered);
    d_out[b] = d;
    sd_out[b] = d * static_cast<float>(sum);
    _mm_storeu_ps(dx4_out + b * 4, _mm_set1_ps(d));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(nq4_out + b * 4), _mm_set1_epi32(-sum));
  }
}

}  // namespace mcmoe::kernels::avx2
