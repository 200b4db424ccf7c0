// mcmoe's grouped low-bit formats: packing, unpacking and the reference row conversions.
//
// Block layout (128 weights): (128 / g) pairs of f16 (scale, min), group k's pair at bytes
// 4k..4k+3, then 16 * b code bytes. The order of the codes is chosen for the AVX-512 VNNI
// kernel, whose activations come in the kInterleave4 layout (kernels/kernels.h): one block
// is one group of 4 activation blocks A B C D (its 4 sub-blocks of 32 weights), held in two
// 64-byte vectors
//   X0 = A[0..15] B[0..15] C[0..15] D[0..15]     X1 = A[16..31] B[16..31] C[16..31] D[16..31]
// so weight e (0..127) of the block belongs at byte ("lane") i = 16 * (e / 32) + e % 16 of
// the vector with index ("half") h = (e / 16) % 2. The codes are stored so that the kernel
// rebuilds the two matching vectors of unsigned codes W0 / W1 in a few instructions and
// vpdpbusd multiplies them with X0 / X1 directly:
//   b = 4: 64 bytes; byte i holds (lane i, half 0) in its low nibble and (lane i, half 1) in
//          its high one: and / shift / and. Per 32 weights this is exactly Q4_0's nibble
//          order (byte j: element j low, element j + 16 high).
//   b = 2: 32 bytes; (lane i, half h) sits at byte i % 32, bits [s, s + 2) with
//          s = 2 * (i / 32) + 4 * h: the 32 bytes broadcast to both 256-bit halves and
//          masked with 0x03 (lanes 0..31) / 0x0c (lanes 32..63) give W0, shifted by 4 first
//          W1 (lanes 32..63 then hold 4 q, which the kernel folds into its scales).
//   b = 1: 16 bytes, two little-endian 64-bit words; bit i of word h is (lane i, half h):
//          each word is the byte mask of one vector (kmovq + masked move, AVX-512BW).
//   b = 3: the low two bits of each code as a b = 2 plane (32 bytes), then the high bit as
//          a b = 1 plane (16 bytes): W = plane2 + 4 * plane1 via a masked byte add.
// The AVX2 kernel (natural activation layout) permutes the activations of a block once per
// token instead, and reads the same bytes; see kernels/mq_avx2.cpp.
#include "quant/lowbit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/quantize.h"

namespace mcmoe::quant {

namespace {

inline int lane_of(int e) {
  return 16 * (e / 32) + e % 16;
}
inline int half_of(int e) {
  return (e / 16) % 2;
}

// f16 neighbours of x on either side: the quantizer rounds the group's min down and its step
// up so the grid min + [0, 2^b - 1] * scale always covers the group's range (the error
// bound of round-to-nearest then holds for every weight, none is clamped).
uint16_t fp16_toward(float x, bool down) {
  uint16_t h = f32_to_fp16(x);
  const float back = fp16_to_f32(h);
  if (down ? back <= x : back >= x) return h;
  if ((h & 0x7fff) == 0) return down ? 0x8001 : 0x0001;  // ±0: the smallest subnormal
  // f16 bit patterns order by magnitude: one step away from zero is +1, toward zero -1.
  const bool negative = (h & 0x8000) != 0;
  const bool away_from_zero = down == negative;
  return static_cast<uint16_t>(away_from_zero ? h + 1 : h - 1);
}

bool exact_fp16(float v) {
  return std::isfinite(v) && fp16_to_f32(f32_to_fp16(v)) == v;
}

void check_mq_type(DType type, const char* what, int* bits, int64_t* group) {
  if (!mq_params(type, bits, group))
    fail("{}: {} is not an mcmoe low-bit (mq) type", what, dtype_name(type));
}

struct GroupParams {
  uint16_t scale, min;
};

// Round-to-nearest of one group of n weights to b bits (b >= 2), or the sign quantizer (b = 1).
GroupParams quantize_group(const float* x, int64_t n, int bits, uint8_t* q) {
  if (bits == 1) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::fabs(x[i]);
    const uint16_t s = f32_to_fp16(static_cast<float>(sum / static_cast<double>(n)));
    for (int64_t i = 0; i < n; ++i) q[i] = x[i] >= 0.f ? 1 : 0;
    // scale = 2 s and min = -s are exact in f16 when s is (doubling only moves the exponent).
    return {f32_to_fp16(2.f * fp16_to_f32(s)), static_cast<uint16_t>(s ^ 0x8000)};
  }
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const int qmax = (1 << bits) - 1;
  const uint16_t min_h = fp16_toward(lo, true);
  const float min = fp16_to_f32(min_h);
  const uint16_t scale_h = fp16_toward((hi - min) / static_cast<float>(qmax), false);
  const float scale = fp16_to_f32(scale_h);
  if (!std::isfinite(min) || !std::isfinite(scale)) {
    fail("quantize_row: group with range [{}, {}] does not fit f16 scales", lo, hi);
  }
  const float inv = scale != 0.f ? 1.f / scale : 0.f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint((x[i] - min) * inv);
    q[i] = static_cast<uint8_t>(std::clamp(static_cast<int>(v), 0, qmax));
  }
  return {scale_h, min_h};
}

}  // namespace

void mq_pack_codes(int bits, const uint8_t* q, uint8_t* codes) {
  std::memset(codes, 0, static_cast<size_t>(16 * bits));
  const int low_bits = bits == 3 ? 2 : bits;
  uint8_t* plane1 = bits == 3 ? codes + 32 : codes;  // where the 1-bit plane goes
  for (int e = 0; e < kMqBlock; ++e) {
    const int i = lane_of(e), h = half_of(e);
    const int v = q[e] & ((1 << low_bits) - 1);
    switch (low_bits) {
      case 4:
        codes[i] |= static_cast<uint8_t>(v << (4 * h));
        break;
      case 2:
        codes[i % 32] |= static_cast<uint8_t>(v << (2 * (i / 32) + 4 * h));
        break;
      case 1:
        codes[8 * h + i / 8] |= static_cast<uint8_t>(v << (i % 8));
        break;
    }
    if (bits == 3) plane1[8 * h + i / 8] |= static_cast<uint8_t>((q[e] >> 2) << (i % 8));
  }
}

void mq_unpack_codes(int bits, const uint8_t* codes, uint8_t* q) {
  const uint8_t* plane1 = codes + 32;
  for (int e = 0; e < kMqBlock; ++e) {
    const int i = lane_of(e), h = half_of(e);
    int v = 0;
    switch (bits) {
      case 4:
        v = (codes[i] >> (4 * h)) & 15;
        break;
      case 1:
        v = (codes[8 * h + i / 8] >> (i % 8)) & 1;
        break;
      default:  // 2, and the low plane of 3
        v = (codes[i % 32] >> (2 * (i / 32) + 4 * h)) & 3;
        if (bits == 3) v |= ((plane1[8 * h + i / 8] >> (i % 8)) & 1) << 2;
    }
    q[e] = static_cast<uint8_t>(v);
  }
}

DType grouped_dtype(const GroupedQuant& gq) {
  if (gq.bits == 8) {
    if (gq.group != 32)
      fail("grouped quant: 8-bit packs only as q8_0 (group 32), got group {}", gq.group);
    return DType::Q8_0;
  }
  const auto t = mq_dtype(gq.bits, gq.group);
  if (!t)
    fail(
        "grouped quant: no format for {} bits in groups of {} (mq types: bits 1-4, "
        "groups 32, 64 or 128; or 8 bits in groups of 32)",
        gq.bits, gq.group);
  return *t;
}

std::vector<uint8_t> pack_grouped(const GroupedQuant& gq, DType type) {
  if (gq.group <= 0 || gq.rows < 0 || gq.cols <= 0 || gq.cols % gq.group != 0) {
    fail("pack_grouped: {} x {} matrix does not split into groups of {}", gq.rows, gq.cols,
         gq.group);
  }
  const size_t n = static_cast<size_t>(gq.rows * gq.cols);
  const size_t ng = static_cast<size_t>(gq.rows * gq.groups_per_row());
  if (gq.q.size() != n || gq.scale.size() != ng || gq.min.size() != ng) {
    fail(
        "pack_grouped: {} x {} in groups of {} needs {} codes and {} scales / mins, got {}, "
        "{} and {}",
        gq.rows, gq.cols, gq.group, n, ng, gq.q.size(), gq.scale.size(), gq.min.size());
  }
  int bits = gq.bits;
  int64_t group = gq.group;
  const bool mq = mq_params(type, &bits, &group);
  if (mq ? bits != gq.bits || group != gq.group
         : (type != DType::Q8_0 || gq.bits != 8) && (type != DType::Q4_0 || gq.bits != 4)) {
    fail("pack_grouped: {}-bit codes in groups of {} cannot be stored as {}", gq.bits, gq.group,
         dtype_name(type));
  }
  if (!mq && gq.group != 32) {
    fail("pack_grouped: {} needs groups of 32, got {}", dtype_name(type), gq.group);
  }
  const uint8_t qmax = static_cast<uint8_t>((1 << gq.bits) - 1);
  for (size_t i = 0; i < n; ++i) {
    if (gq.q[i] > qmax)
      fail("pack_grouped: code {} at index {} exceeds {} bits", gq.q[i], i, gq.bits);
  }
  // Symmetric formats: min is a fixed multiple of scale; MQ: both stored as f16 as given.
  const float sym = type == DType::Q8_0 ? -128.f : -8.f;
  for (size_t k = 0; k < ng; ++k) {
    const int64_t r = static_cast<int64_t>(k) / gq.groups_per_row();
    const int64_t g = static_cast<int64_t>(k) % gq.groups_per_row();
    if (!exact_fp16(gq.scale[k]) || (mq && !exact_fp16(gq.min[k]))) {
      fail(
          "pack_grouped: row {} group {}: scale {} / min {} is not exactly representable in "
          "f16 (round them before choosing codes)",
          r, g, gq.scale[k], gq.min[k]);
    }
    if (!mq && gq.min[k] != sym * gq.scale[k]) {
      fail(
          "pack_grouped: row {} group {}: {} is symmetric and needs min = {} * scale = {}, got "
          "{}",
          r, g, dtype_name(type), sym, sym * gq.scale[k], gq.min[k]);
    }
  }

  const size_t rb = row_bytes(type, gq.cols);  // fails unless cols is whole blocks
  std::vector<uint8_t> out(rb * static_cast<size_t>(gq.rows));
  const int64_t block = dtype_traits(type).block_size;
  const size_t block_bytes = dtype_traits(type).block_bytes;
  const int64_t gpb = mq ? kMqBlock / gq.group : 1;  // groups per block
  for (int64_t r = 0; r < gq.rows; ++r) {
    for (int64_t b = 0; b < gq.cols / block; ++b) {
      uint8_t* dst =
          out.data() + static_cast<size_t>(r) * rb + static_cast<size_t>(b) * block_bytes;
      const uint8_t* q = gq.q.data() + r * gq.cols + b * block;
      const size_t g0 = static_cast<size_t>(r * gq.groups_per_row() + b * gpb);
      if (type == DType::Q8_0) {
        BlockQ8_0 blk{.d = f32_to_fp16(gq.scale[g0]), .qs = {}};
        for (int j = 0; j < 32; ++j) blk.qs[j] = static_cast<int8_t>(q[j] - 128);
        std::memcpy(dst, &blk, sizeof(blk));
      } else if (type == DType::Q4_0) {
        BlockQ4_0 blk{.d = f32_to_fp16(gq.scale[g0]), .qs = {}};
        for (int j = 0; j < 16; ++j) blk.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
        std::memcpy(dst, &blk, sizeof(blk));
      } else {
        for (int64_t k = 0; k < gpb; ++k) {
          const uint16_t pair[2] = {f32_to_fp16(gq.scale[g0 + k]), f32_to_fp16(gq.min[g0 + k])};
          std::memcpy(dst + 4 * k, pair, 4);
        }
        mq_pack_codes(gq.bits, q, dst + mq_header_bytes(gq.group));
      }
    }
  }
  return out;
}

GroupedQuant unpack_mq(DType type, const uint8_t* data, int64_t rows, int64_t cols) {
  GroupedQuant gq;
  check_mq_type(type, "unpack_mq", &gq.bits, &gq.group);
  const size_t rb = row_bytes(type, cols);
  gq.rows = rows;
  gq.cols = cols;
  gq.q.resize(static_cast<size_t>(rows * cols));
  gq.scale.resize(static_cast<size_t>(rows * gq.groups_per_row()));
  gq.min.resize(gq.scale.size());
  const size_t block_bytes = dtype_traits(type).block_bytes;
  const int64_t gpb = kMqBlock / gq.group;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / kMqBlock; ++b) {
      const uint8_t* src =
          data + static_cast<size_t>(r) * rb + static_cast<size_t>(b) * block_bytes;
      const size_t g0 = static_cast<size_t>(r * gq.groups_per_row() + b * gpb);
      for (int64_t k = 0; k < gpb; ++k) {
        uint16_t pair[2];
        std::memcpy(pair, src + 4 * k, 4);
        gq.scale[g0 + k] = fp16_to_f32(pair[0]);
        gq.min[g0 + k] = fp16_to_f32(pair[1]);
      }
      mq_unpack_codes(gq.bits, src + mq_header_bytes(gq.group),
                      gq.q.data() + r * cols + b * kMqBlock);
    }
  }
  return gq;
}

void quantize_row_mq(DType type, const float* src, void* dst, int64_t n) {
  int bits = 0;
  int64_t group = 0;
  check_mq_type(type, "quantize_row", &bits, &group);
  const size_t block_bytes = dtype_traits(type).block_bytes;
  auto* out = static_cast<uint8_t*>(dst);
  uint8_t q[kMqBlock];
  for (int64_t b = 0; b < n / kMqBlock; ++b, src += kMqBlock, out += block_bytes) {
    for (int64_t k = 0; k < kMqBlock / group; ++k) {
      const GroupParams p = quantize_group(src + k * group, group, bits, q + k * group);
      std::memcpy(out + 4 * k, &p.scale, 2);
      std::memcpy(out + 4 * k + 2, &p.min, 2);
    }
    mq_pack_codes(bits, q, out + mq_header_bytes(group));
  }
}

void dequantize_row_mq(DType type, const void* src, float* dst, int64_t n) {
  int bits = 0;
  int64_t group = 0;
  check_mq_type(type, "dequantize_row", &bits, &group);
  const size_t block_bytes = dtype_traits(type).block_bytes;
  const auto* in = static_cast<const uint8_t*>(src);
  uint8_t q[kMqBlock];
  for (int64_t b = 0; b < n / kMqBlock; ++b, in += block_bytes, dst += kMqBlock) {
    mq_unpack_codes(bits, in + mq_header_bytes(group), q);
    for (int64_t e = 0; e < kMqBlock; ++e) {
      uint16_t pair[2];
      std::memcpy(pair, in + 4 * (e / group), 4);
      dst[e] = fp16_to_f32(pair[0]) * static_cast<float>(q[e]) + fp16_to_f32(pair[1]);
    }
  }
}

}  // namespace mcmoe::quant
