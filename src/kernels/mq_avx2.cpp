// AVX2 kernels for mcmoe's grouped low-bit weights (MQ{1,2,3,4}_G{32,64,128},
// quant/lowbit.h) against int8 activation blocks in the natural layout (act_avx2.cpp).
// Hand intrinsics: Highway 1.0.3 has no int8 dot product.
//
// The codes are stored for the AVX-512 kernel's interleaved activations (lowbit.cpp): they
// unpack cheaply into four 32-byte vectors V0..V3 = (lanes 0..31 | 32..63) × (half 0 | 1),
// where lanes 0..15 / 16..31 / 32..47 / 48..63 are sub-blocks 0 / 1 / 2 / 3 and half h their
// elements 16h..16h+15. Rather than permute every weight block, each call first rearranges
// the activations of its tokens once to match (a few instructions per block and token, shared
// by all rows):
//   P0 = [a0[0..15] a1[0..15]]  P1 = [a0[16..31] a1[16..31]]  P2, P3 the same for a2, a3.
// Without VNNI the product is vpmaddubsw (unsigned codes × signed activations → int16 pairs,
// at most 2 · 15 · 127, so two of them add without overflow) then vpmaddwd against ones. One
// vphaddd leaves each sub-block's sum in two lanes, ordered [s0 s0 s2 s2 | s1 s1 s3 s3]; the
// prepared row holds dx and sd / 2 (sd = dx · Σa) in that order, so per lane
//   acc += dx · scale · lane + min · sd / 2
// adds up to dx · (scale · Σ q·a + min · Σa) per sub-block (mq_scalar.cpp).
// Tiles of up to 4 rows × 2 tokens (16 ymm registers bound the tile).
#include <immintrin.h>

#include <cstring>

#include "core/aligned_scratch.h"
#include "kernels/kernel_sets.h"
#include "kernels/mq_common.h"
#include "kernels/tile_walk.h"
#include "quant/lowbit.h"

namespace mcmoe::kernels::avx2 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 2;
constexpr int64_t kTokBlock = 64;  // tokens prepared at a time (see dot_q_avx512.cpp)

// One prepared block of one token: P0..P3, then dx and sd / 2 in lane order.
struct alignas(32) PrepBlock {
  __m256i p[4];
  __m256 dx, sdh;
};
static_assert(sizeof(PrepBlock) == 192);

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_hadd_ps(s, s);  // end of a tile only: speed does not matter
  return _mm_cvtss_f32(_mm_hadd_ps(h, h));
}

// Sub-block of each lane of the reduced sums: [0 0 2 2 1 1 3 3].
inline __m256i lane_subblocks() {
  return _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
}

void prepare(const uint8_t* xrow, const ActRowLayout& l, int64_t nblk, PrepBlock* out) {
  const auto* d = reinterpret_cast<const float*>(xrow + l.d_off);
  const auto* sd = reinterpret_cast<const float*>(xrow + l.sd_off);
  const __m256i order = lane_subblocks();
  for (int64_t b = 0; b < nblk; ++b) {
    const auto* x = reinterpret_cast<const __m256i*>(xrow) + 4 * b;
    const __m256i x0 = _mm256_load_si256(x), x1 = _mm256_load_si256(x + 1);
    const __m256i x2 = _mm256_load_si256(x + 2), x3 = _mm256_load_si256(x + 3);
    out[b].p[0] = _mm256_permute2x128_si256(x0, x1, 0x20);
    out[b].p[1] = _mm256_permute2x128_si256(x0, x1, 0x31);
    out[b].p[2] = _mm256_permute2x128_si256(x2, x3, 0x20);
    out[b].p[3] = _mm256_permute2x128_si256(x2, x3, 0x31);
    // Only lanes 0..3 of the widened 4-float loads are selected.
    out[b].dx = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(d + 4 * b)), order);
    out[b].sdh = _mm256_mul_ps(
        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sd + 4 * b)), order),
        _mm256_set1_ps(0.5f));
  }
}

// 32 bits → 32 bytes, k where the bit is set, else 0.
inline __m256i expand_bits(uint32_t m, char k) {
  const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                            0x0303030303030303);  // byte j ← byte j / 8
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  const __m256i v =
      _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(m)), spread), bit);
  if (k == 1) return _mm256_min_epu8(v, _mm256_set1_epi8(1));  // 2^j or 0 → 1 or 0
  return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(k));
}

// V0..V3 (see the top of the file) from a block's code bytes.
template <int B>
inline void load_codes(const uint8_t* p, __m256i (&v)[4]) {
  if constexpr (B == 4) {
    const __m256i nib = _mm256_set1_epi8(0x0f);
    const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    v[0] = _mm256_and_si256(c0, nib);
    v[1] = _mm256_and_si256(_mm256_srli_epi16(c0, 4), nib);
    v[2] = _mm256_and_si256(c1, nib);
    v[3] = _mm256_and_si256(_mm256_srli_epi16(c1, 4), nib);
  } else if constexpr (B == 1) {
    uint32_t m[4];  // half 0 lanes 0..31, 32..63; half 1 lanes 0..31, 32..63
    std::memcpy(m, p, 16);
    v[0] = expand_bits(m[0], 1);
    v[2] = expand_bits(m[1], 1);
    v[1] = expand_bits(m[2], 1);
    v[3] = expand_bits(m[3], 1);
  } else {
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i two = _mm256_set1_epi8(3);
    v[0] = _mm256_and_si256(c, two);
    v[2] = _mm256_and_si256(_mm256_srli_epi16(c, 2), two);
    v[1] = _mm256_and_si256(_mm256_srli_epi16(c, 4), two);
    v[3] = _mm256_and_si256(_mm256_srli_epi16(c, 6), two);
    if constexpr (B == 3) {
      uint32_t m[4];
      std::memcpy(m, p + 32, 16);
      v[0] = _mm256_or_si256(v[0], expand_bits(m[0], 4));
      v[2] = _mm256_or_si256(v[2], expand_bits(m[1], 4));
      v[1] = _mm256_or_si256(v[1], expand_bits(m[2], 4));
      v[3] = _mm256_or_si256(v[3], expand_bits(m[3], 4));
    }
  }
}

// Scales and mins in lane order: lane of sub-block s reads its group's pair, words
// 2 · (s · 32 / G) and + 1 of the header. 16 bytes are loaded (blocks are at least 20); the
// permute only picks header words.
template <int G>
inline void load_header(const uint8_t* p, __m256& sc, __m256& mn) {
  const __m256 h = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  constexpr int k1 = 2 * (32 / G), k2 = 2 * (64 / G), k3 = 2 * (96 / G);
  const __m256i idx = _mm256_setr_epi32(0, 0, k2, k2, k1, k1, k3, k3);
  sc = _mm256_permutevar8x32_ps(h, idx);
  mn = _mm256_permutevar8x32_ps(h, _mm256_add_epi32(idx, _mm256_set1_epi32(1)));
}

struct TileArgs {
  const uint8_t* w;
  size_t w_stride;
  int64_t nblk;
  const PrepBlock* x;  // first token's prepared row
  int64_t x_stride;    // blocks between tokens
  float* y;
  int64_t ldy;
  size_t prefetch;  // bytes to the next tile's rows, 0 = none (see dot_q_avx512.cpp)
};
using TileFn = void (*)(const TileArgs&);

template <int B, int G, int R, int T>
void tile(const TileArgs& a) {
  constexpr size_t kHeader = quant::mq_header_bytes(G);
  constexpr size_t kBlockBytes = kHeader + 16 * B;
  __m256 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t blk = 0; blk < a.nblk; ++blk) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* wb = a.w + r * a.w_stride + blk * kBlockBytes;
      if (a.prefetch != 0) {
        _mm_prefetch(reinterpret_cast<const char*>(wb + a.prefetch), _MM_HINT_T0);
        if constexpr (kBlockBytes > 64) {
          _mm_prefetch(reinterpret_cast<const char*>(wb + a.prefetch + 64), _MM_HINT_T0);
        }
      }
      __m256i v[4];
      load_codes<B>(wb + kHeader, v);
      __m256 sc, mn;
      load_header<G>(wb, sc, mn);
#pragma GCC unroll 2
      for (int t = 0; t < T; ++t) {
        const PrepBlock& x = a.x[t * a.x_stride + blk];
        const __m256i m01 = _mm256_add_epi16(_mm256_maddubs_epi16(v[0], x.p[0]),
                                             _mm256_maddubs_epi16(v[1], x.p[1]));
        const __m256i m23 = _mm256_add_epi16(_mm256_maddubs_epi16(v[2], x.p[2]),
                                             _mm256_maddubs_epi16(v[3], x.p[3]));
        const __m256i s =
            _mm256_hadd_epi32(_mm256_madd_epi16(m01, ones), _mm256_madd_epi16(m23, ones));
        const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), sc);
        acc[r][t] = _mm256_fmadd_ps(f, x.dx, _mm256_fmadd_ps(mn, x.sdh, acc[r][t]));
      }
    }
  }
  store_tile<R, T>(a.y, a.ldy, false, [&](int r, int t) { return hsum(acc[r][t]); });
}

template <int B, int G>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<B, G, R, T>;
};

struct Gemm {
  template <int B, int G>
  static void run(const GemmArgs& g) {
    static constexpr auto kTiles = make_tile_table<Tiles<B, G>, TileArgs, kRowTile, kTokTile>();
    const ActRowLayout l = act_row_layout(g.cols);
    const int64_t nblk = g.cols / quant::kMqBlock;
    thread_local AlignedScratch scratch;
    auto* prep = static_cast<PrepBlock*>(
        scratch.get(sizeof(PrepBlock) *
                    static_cast<size_t>(nblk * (g.n_tokens < kTokBlock ? g.n_tokens : kTokBlock))));
    TileArgs a{.w = nullptr,
               .w_stride = g.w_stride,
               .nblk = nblk,
               .x = nullptr,
               .x_stride = nblk,
               .y = nullptr,
               .ldy = g.ldy,
               .prefetch = 0};
    const auto* x = static_cast<const uint8_t*>(g.x);
    int64_t t_first = 0;  // token of prep[0]
    const TileWalk walk{.blocks = nblk,
                        .chunk_blocks = 0,
                        .row_tile = kRowTile,
                        .tok_tile = kTokTile,
                        .tok_block = kTokBlock};
    walk_tiles(
        g, walk,
        [&](int64_t t0, int64_t t_end) {
          t_first = t0;
          for (int64_t t = t0; t < t_end; ++t) {
            prepare(x + t * g.x_stride, l, nblk, prep + (t - t0) * nblk);
          }
        },
        [&](const Tile& tl) {
          a.w = g.w + tl.r * g.w_stride;
          a.x = prep + (tl.t - t_first) * nblk;
          a.y = g.y + tl.t * g.ldy + tl.r;
          a.prefetch = tl.prefetch ? kRowTile * g.w_stride : 0;
          kTiles[tl.rows - 1][tl.tokens - 1](a);
        });
  }
};

}  // namespace

void gemm_mq(const GemmArgs& a) {
  run_mq<Gemm>(a);
}

}  // namespace mcmoe::kernels::avx2
