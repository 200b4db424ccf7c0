// AVX-512 VNNI kernels for Q8_0 and Q4_0 weights against int8 activation blocks
// (kInterleave4 layout, act_avx512.cpp). Hand intrinsics because Highway 1.0.3 has no int8
// dot-product op; see act_avx512.cpp.
//
// The method, per weight block (32 codes qw, fp16 scale dw) and activation block (int8 codes
// qx, f32 scale dx):
//   vpdpbusd multiplies unsigned by signed bytes, so the weight codes are made unsigned by an
//   offset K (Q8_0: qw + 128 via xor 0x80; Q4_0: the stored nibble already is qw + 8):
//     Σ qw·qx = Σ (qw + K)·qx - K·Σqx.
//   A 512-bit register holds 4 blocks (16 bytes each in its low and high halves: how Q4_0's
//   nibbles unpack), so two vpdpbusd leave 4 int32 lanes per block. Starting them from
//   -(K / 4)·Σqx in each lane (the activation row stores -Σqx four-fold) removes the offset
//   for free. The lanes are converted to f32 and multiplied by dw (four fp16 scales picked
//   out of the group's bytes with one 16-bit permute: a gather costs 4x more here) and by dx
//   (stored four-fold): one vcvtdq2ps, one multiply and one FMA per 4 blocks.
// Tiles of up to 4 weight rows × 4 tokens keep 16 accumulators in registers, so each weight
// group loaded serves 4 tokens (prefill) and each activation group 4 rows.
//
// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of unmasked
// intrinsics (_mm512_cvtph_ps, _mm512_reduce_add_ps), which -Wuninitialized reports once
// inlined (GCC bug 105593, fixed in GCC 13). The values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx512 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 4;
// Prefill blocking: the activations of kTokBlock tokens × kColChunkBlocks blocks (72 bytes
// per block: 590 KB) stay in L2 while the thread's rows stream past, once per token block
// and column chunk. Rows wider than the chunk (FFN down: 14336 columns) are summed over
// chunks in y; a chunk of 128 blocks keeps that extra horizontal sum per tile below 1%.
constexpr int64_t kTokBlock = 64;
constexpr int64_t kColChunkBlocks = 128;  // a multiple of 4 (whole groups)

// Weight-format specifics: block size, log2(K / 4) for the bias, and the load of a group of
// 4 blocks into (low halves, high halves) of unsigned codes plus the 16 lane scales
// [dA dA dA dA dB ... dD]. Every load stays inside the group's bytes.
template <WFormat F>
struct QFormat;

template <>
struct QFormat<WFormat::kQ8_0> {
  static constexpr size_t kBlockBytes = 34;
  static constexpr int kBiasShift = 5;  // K = 128
  static void load_group(const uint8_t* p, __m512i& lo, __m512i& hi, __m512& dw) {
    // ab = A[0..31] B[0..31], cd = C[0..31] D[0..31]; 64-bit lanes 0,1 = A[0..15], 2,3 =
    // A[16..31], 4,5 = B[0..15], ... A two-source permute regroups them into halves.
    const __m512i ab = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 36)), 1);
    const __m512i cd = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 70))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 104)), 1);
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    lo = _mm512_xor_si512(
        _mm512_permutex2var_epi64(ab, _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), cd), sign);
    hi = _mm512_xor_si512(
        _mm512_permutex2var_epi64(ab, _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15), cd), sign);
    // Scales at bytes 0, 34, 68, 102: 16-bit words 0 and 17 of the first 64 bytes, 2 and 19
    // of the next 64 (indices 32 + w pick the second source).
    const __m512i w0 = _mm512_loadu_si512(p);
    const __m512i w1 = _mm512_loadu_si512(p + 64);
    const __m512i idx =
        _mm512_setr_epi32(0x00000000, 0x00000000, 0x00110011, 0x00110011, 0x00220022, 0x00220022,
                          0x00330033, 0x00330033, 0, 0, 0, 0, 0, 0, 0, 0);
    dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(w0, idx, w1)));
  }
};

template <>
struct QFormat<WFormat::kQ4_0> {
  static constexpr size_t kBlockBytes = 18;
  static constexpr int kBiasShift = 1;  // K = 8
  static void load_group(const uint8_t* p, __m512i& lo, __m512i& hi, __m512& dw) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 20)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 38)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 56)), 3);
    const __m512i nib = _mm512_set1_epi8(0x0f);
    lo = _mm512_and_si512(v, nib);
    hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
    // Scales at bytes 0, 18, 36, 54: 16-bit words 0, 9, 18, 27 of the first 64 bytes.
    const __m512i idx =
        _mm512_setr_epi32(0x00000000, 0x00000000, 0x00090009, 0x00090009, 0x00120012, 0x00120012,
                          0x001b001b, 0x001b001b, 0, 0, 0, 0, 0, 0, 0, 0);
    dw = _mm512_cvtph_ps(
        _mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, _mm512_loadu_si512(p))));
  }
};

using TileArgs = QTileArgs;  // nb, b_begin / b_end in blocks of 32 (b_begin a multiple of 4)
using TileFn = QTileFn;

// One group of 4 blocks (starting at block blk) for all R × T pairs of the tile. wp[r] points
// at the group in row r, or at a zero-padded copy of a partial last group.
template <WFormat F, int R, int T>
[[gnu::always_inline]] inline void group_step(const uint8_t* const (&wp)[R], const TileArgs& a,
                                              int64_t blk, __m512 (&acc)[R][T]) {
  using Q = QFormat<F>;
  __m512i bias[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const auto* nq4 = reinterpret_cast<const __m512i*>(a.x + t * a.x_stride + a.nq4_off) + blk / 4;
    bias[t] = _mm512_slli_epi32(_mm512_load_si512(nq4), Q::kBiasShift);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    if (a.prefetch != 0) {
      // A group is 72 (Q4_0) or 136 (Q8_0) bytes: its lines, in the row 4 rows further on.
      const char* next = reinterpret_cast<const char*>(wp[r]) + a.prefetch;
#pragma GCC unroll 3
      for (size_t off = 0; off < 4 * Q::kBlockBytes + 63; off += 64) {
        _mm_prefetch(next + off, _MM_HINT_T0);
      }
    }
    __m512i lo, hi;
    __m512 dw;
    Q::load_group(wp[r], lo, hi, dw);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const uint8_t* xrow = a.x + t * a.x_stride;
      const auto* xq = reinterpret_cast<const __m512i*>(xrow + blk * 32);
      __m512i s = _mm512_dpbusd_epi32(bias[t], lo, _mm512_load_si512(xq));
      s = _mm512_dpbusd_epi32(s, hi, _mm512_load_si512(xq + 1));
      const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), dw);
      const auto* dx4 = reinterpret_cast<const float*>(xrow + a.dx4_off) + blk * 4;
      acc[r][t] = _mm512_fmadd_ps(f, _mm512_load_ps(dx4), acc[r][t]);
    }
  }
}

template <WFormat F, int R, int T>
void tile(const TileArgs& a) {
  constexpr size_t kBB = QFormat<F>::kBlockBytes;
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  const int64_t full_end = a.b_end == a.nb ? a.nb / 4 * 4 : a.b_end;
  for (int64_t blk = a.b_begin; blk < full_end; blk += 4) {
    const uint8_t* wp[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wp[r] = a.w + r * a.w_stride + blk * kBB;
    group_step<F, R, T>(wp, a, blk, acc);
  }
  if (full_end < a.b_end) {
    // The last, partial group runs on zero-padded copies so no load passes the row; the
    // activation row is zero past nb, so the padding contributes nothing.
    const int64_t blk = full_end;
    alignas(64) uint8_t pad[R][4 * kBB];
    const uint8_t* wp[R];
    for (int r = 0; r < R; ++r) {
      std::memset(pad[r], 0, sizeof(pad[r]));
      std::memcpy(pad[r], a.w + r * a.w_stride + blk * kBB, static_cast<size_t>(a.nb - blk) * kBB);
      wp[r] = pad[r];
    }
    group_step<F, R, T>(wp, a, blk, acc);
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate, [&](int r, int t) { return _mm512_reduce_add_ps(acc[r][t]); });
}

template <WFormat F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <WFormat F>
void gemm(const GemmArgs& g) {
  static constexpr auto kTiles = make_tile_table<Tiles<F>, TileArgs, kRowTile, kTokTile>();
  // Decode reads each row start to end in one pass; prefill splits wide rows into column
  // chunks so a token block's activations stay in L2 (see kColChunkBlocks).
  run_qtiles(g,
             TileWalk{.blocks = g.cols / 32,
                      .chunk_blocks = kColChunkBlocks,
                      .row_tile = kRowTile,
                      .tok_tile = kTokTile,
                      .tok_block = kTokBlock},
             kTiles);
}

}  // namespace

void gemm_q8_0(const GemmArgs& a) {
  gemm<WFormat::kQ8_0>(a);
}
void gemm_q4_0(const GemmArgs& a) {
  gemm<WFormat::kQ4_0>(a);
}

}  // namespace mcmoe::kernels::avx512
