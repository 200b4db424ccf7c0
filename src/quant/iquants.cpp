#include "quant/iquants.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/iq_grids.h"

namespace mcmoe::quant {

namespace {

using namespace iq_grids;

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
float fp16_at(const uint8_t* p) {
  return fp16_to_f32(u16_at(p));
}

void begin(IntBlock* o, int n, float d) {
  o->n = n;
  o->d = d;
  o->dmin = 0.f;
  std::memset(o->min, 0, sizeof(o->min));
}

// 8 weights from a grid entry's magnitudes (byte j of `entry`) and a sign byte (bit j set:
// negative).
void signed8(uint64_t entry, uint8_t signs, int8_t* q) {
  for (int j = 0; j < 8; ++j) {
    const int m = static_cast<int>((entry >> (8 * j)) & 0xff);
    q[j] = static_cast<int8_t>((signs >> j) & 1 ? -m : m);
  }
}

// Two 4-weight grid entries (IQ3) under one sign byte: the first takes bits 0..3.
void signed4x2(uint32_t first, uint32_t second, uint8_t signs, int8_t* q) {
  signed8(first | static_cast<uint64_t>(second) << 32, signs, q);
}

// Weights j and j + 16 from the nibbles of 16 bytes, through a 16-entry value table.
void nibble_values(const uint8_t* qs, const std::array<int8_t, 16>& values, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = values[qs[j] & 0x0f];
    q[j + 16] = values[qs[j] >> 4];
  }
}

// IQ1 grid entries (values -1, 0, 1) as 8 g + delta, delta = ±1.
void iq1_group(uint64_t entry, int delta, int8_t* q) {
  for (int j = 0; j < 8; ++j) {
    const auto g = static_cast<int8_t>((entry >> (8 * j)) & 0xff);
    q[j] = static_cast<int8_t>(8 * g + delta);
  }
}

// TQ1_0's base-3 digit n of byte b: the byte holds ceil(value · 256 / 3^5); multiplying by 3^n
// (mod 256) brings digit n to the top, and · 3 >> 8 reads it.
int trit(uint8_t b, int n) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const auto shifted = static_cast<uint8_t>(b * kPow3[n]);
  return (shifted * 3) >> 8;
}

}  // namespace

bool is_iquant_family(DType type) {
  switch (type) {
  MCMOE_CASE_IQ_TYPES:
    return true;
    default:
      return false;
  }
}

void mxfp4_block_from_hf(const uint8_t* codes16, uint8_t scale, uint8_t* out17) {
  const auto code = [&](int k) { return k % 2 == 0 ? codes16[k / 2] & 0x0f : codes16[k / 2] >> 4; };
  out17[0] = scale;
  for (int j = 0; j < 16; ++j) out17[1 + j] = static_cast<uint8_t>(code(j) | code(j + 16) << 4);
}

void decode_iquant_block(DType type, const uint8_t* p, IntBlock* o) {
  int8_t* q = o->q;
  int16_t* sc = o->scale;
  switch (type) {
    case DType::IQ2_XXS: {
      begin(o, 256, fp16_at(p) * 0.125f);
      for (int ib = 0; ib < 8; ++ib) {
        const uint8_t* g = p + 2 + 8 * ib;
        const uint32_t aux = u32_at(g + 4);
        sc[2 * ib] = sc[2 * ib + 1] = static_cast<int16_t>(2 * (aux >> 28) + 1);
        for (int l = 0; l < 4; ++l) {
          signed8(kIQ2XXS[g[l]], kSigns7[(aux >> (7 * l)) & 127], q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ2_XS: {
      begin(o, 256, fp16_at(p) * 0.125f);
      for (int ib = 0; ib < 8; ++ib) {
        const uint8_t s = p[66 + ib];
        sc[2 * ib] = static_cast<int16_t>(2 * (s & 0x0f) + 1);
        sc[2 * ib + 1] = static_cast<int16_t>(2 * (s >> 4) + 1);
        for (int l = 0; l < 4; ++l) {
          const uint16_t v = u16_at(p + 2 + 2 * (4 * ib + l));
          signed8(kIQ2XS[v & 511], kSigns7[v >> 9], q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ2_S: {
      begin(o, 256, fp16_at(p) * 0.125f);
      for (int ib = 0; ib < 8; ++ib) {
        const uint8_t s = p[74 + ib];
        sc[2 * ib] = static_cast<int16_t>(2 * (s & 0x0f) + 1);
        sc[2 * ib + 1] = static_cast<int16_t>(2 * (s >> 4) + 1);
        const int qh = p[66 + ib];
        for (int l = 0; l < 4; ++l) {
          const int idx = p[2 + 4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
          signed8(kIQ2S[idx], p[34 + 4 * ib + l], q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ3_XXS: {
      begin(o, 256, fp16_at(p) * 0.25f);
      for (int ib = 0; ib < 8; ++ib) {
        const uint8_t* g = p + 2 + 8 * ib;
        const uint32_t aux = u32_at(p + 66 + 4 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = static_cast<int16_t>(2 * (aux >> 28) + 1);
        for (int l = 0; l < 4; ++l) {
          signed4x2(kIQ3XXS[g[2 * l]], kIQ3XXS[g[2 * l + 1]], kSigns7[(aux >> (7 * l)) & 127],
                    q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ3_S: {
      begin(o, 256, fp16_at(p));
      for (int ib = 0; ib < 8; ++ib) {
        sc[2 * ib] = sc[2 * ib + 1] =
            static_cast<int16_t>(2 * ((p[106 + ib / 2] >> (4 * (ib % 2))) & 0x0f) + 1);
        const uint8_t* g = p + 2 + 8 * ib;
        const int qh = p[66 + ib];
        for (int l = 0; l < 4; ++l) {
          const int i1 = g[2 * l] | ((qh << (8 - 2 * l)) & 256);
          const int i2 = g[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
          signed4x2(kIQ3S[i1], kIQ3S[i2], p[74 + 4 * ib + l], q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ1_S: {
      begin(o, 256, fp16_at(p) * 0.125f);
      for (int ib = 0; ib < 8; ++ib) {
        const uint16_t qh = u16_at(p + 34 + 2 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = static_cast<int16_t>(2 * ((qh >> 12) & 7) + 1);
        const int delta = qh & 0x8000 ? -1 : 1;
        for (int l = 0; l < 4; ++l) {
          const int idx = p[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
          iq1_group(kIQ1S[idx], delta, q + 32 * ib + 8 * l);
        }
      }
      return;
    }
    case DType::IQ1_M: {
      begin(o, 256, fp16_to_f32(iq1m_d_bits(p)) * 0.125f);
      for (int ib = 0; ib < 8; ++ib) {
        const int s = u16_at(p + 48 + 2 * (ib / 2)) >> (6 * (ib % 2));
        sc[2 * ib] = static_cast<int16_t>(2 * (s & 7) + 1);
        sc[2 * ib + 1] = static_cast<int16_t>(2 * ((s >> 3) & 7) + 1);
        const uint8_t* qs = p + 4 * ib;
        const int h0 = p[32 + 2 * ib], h1 = p[33 + 2 * ib];
        const int idx[4] = {qs[0] | ((h0 << 8) & 0x700), qs[1] | ((h0 << 4) & 0x700),
                            qs[2] | ((h1 << 8) & 0x700), qs[3] | ((h1 << 4) & 0x700)};
        const int delta[4] = {h0 & 0x08 ? -1 : 1, h0 & 0x80 ? -1 : 1, h1 & 0x08 ? -1 : 1,
                              h1 & 0x80 ? -1 : 1};
        for (int l = 0; l < 4; ++l) iq1_group(kIQ1S[idx[l]], delta[l], q + 32 * ib + 8 * l);
      }
      return;
    }
    case DType::IQ4_NL: {
      begin(o, 32, fp16_at(p));
      sc[0] = sc[1] = 1;
      nibble_values(p + 2, kIQ4NLValues, q);
      return;
    }
    case DType::IQ4_XS: {
      begin(o, 256, fp16_at(p));
      const uint16_t high = u16_at(p + 2);
      for (int ib = 0; ib < 8; ++ib) {
        const int low = (p[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
        sc[2 * ib] = sc[2 * ib + 1] =
            static_cast<int16_t>((low | (((high >> (2 * ib)) & 3) << 4)) - 32);
        nibble_values(p + 8 + 16 * ib, kIQ4NLValues, q + 32 * ib);
      }
      return;
    }
    case DType::TQ1_0: {
      begin(o, 256, fp16_at(p + 52));
      for (int s = 0; s < 16; ++s) sc[s] = 1;
      // Weights 0..159: digit n of qs[m] (m < 32) is weight 32 n + m; 160..239: digit n of
      // qs[32 + m] (m < 16) is weight 160 + 16 n + m; 240..255: digit n of qh[j] is 240 + 4 n + j.
      for (int n = 0; n < 5; ++n) {
        for (int m = 0; m < 32; ++m) q[32 * n + m] = static_cast<int8_t>(trit(p[m], n) - 1);
        for (int m = 0; m < 16; ++m)
          q[160 + 16 * n + m] = static_cast<int8_t>(trit(p[32 + m], n) - 1);
      }
      for (int n = 0; n < 4; ++n)
        for (int j = 0; j < 4; ++j)
          q[240 + 4 * n + j] = static_cast<int8_t>(trit(p[48 + j], n) - 1);
      return;
    }
    case DType::TQ2_0: {
      begin(o, 256, fp16_at(p + 64));
      for (int s = 0; s < 16; ++s) sc[s] = 1;
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 4; ++l)
          for (int m = 0; m < 32; ++m)
            q[128 * h + 32 * l + m] = static_cast<int8_t>(((p[32 * h + m] >> (2 * l)) & 3) - 1);
      return;
    }
    case DType::MXFP4: {
      begin(o, 32, e8m0_half(p[0]));
      sc[0] = sc[1] = 1;
      nibble_values(p + 1, kMXFP4Values, q);
      return;
    }
    default:
      break;
  }
  fail("internal: decode_iquant_block: {} is not an i-quant family type", dtype_name(type));
}

}  // namespace mcmoe::quant
