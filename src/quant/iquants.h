#pragma once
// llama.cpp's i-quants (IQ1_S .. IQ4_XS), its ternary types (TQ1_0, TQ2_0) and MXFP4,
// bit-compatible with its files. Only reading is supported: llama-quantize makes these files,
// mcmoe runs them. Layouts follow ggml-common.h and dequantize_row_* of ggml-quants.c (ggml
// commit d99724f2); MXFP4 is the OCP Microscaling format (blocks of 32 E2M1 values sharing
// one E8M0 scale) in ggml's block layout (type id 39).
//
// Every one of these formats, unpacked, is value[e] = d · scale[e / 16] · q[e] with a small
// signed integer q (|q| ≤ 127) and a small integer scale: the K-quants' IntBlock form
// (quant/kquants.h) with no min. The decoders below fill it so that the dequantization and
// the scalar kernels of the K-quants serve these types too, bit-identical to ggml:
//  - grid scales (0.5 + s) · 0.25 and (0.5 + s) · 0.5 become (2 s + 1) with d · 0.125 and
//    d · 0.25: scaling by a power of two commutes with f32 rounding;
//  - IQ1's offset grid values g ± 1/8 become the integers 8 g ± 1 with d · 0.125.
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "quant/kquants.h"

// The case labels of every type defined here, for a switch over DType.
#define MCMOE_CASE_IQ_TYPES \
  case DType::IQ2_XXS:      \
  case DType::IQ2_XS:       \
  case DType::IQ2_S:        \
  case DType::IQ3_XXS:      \
  case DType::IQ3_S:        \
  case DType::IQ1_S:        \
  case DType::IQ1_M:        \
  case DType::IQ4_NL:       \
  case DType::IQ4_XS:       \
  case DType::TQ1_0:        \
  case DType::TQ2_0:        \
  case DType::MXFP4

namespace mcmoe::quant {

// Byte offsets of the fields of each block (super-blocks of 256 unless noted). Multi-byte
// fields are little-endian; d is fp16.
//   IQ2_XXS (66):  d @0, per 32 weights 8 bytes @2 + 8 i: 4 grid indices (8 weights each,
//                  iq_grids::kIQ2XXS), then a u32: 4 × 7 sign bits (kSigns7), scale in bits 28..31
//   IQ2_XS (74):   d @0, u16 qs[32] @2 (grid index 9 bits into kIQ2XS, 7 sign bits), scales[8]
//                  @66: low nibble for weights 0..15 of each 32, high for 16..31
//   IQ2_S (82):    d @0, grid low bytes [32] @2, signs [32] @34 (8 bits, no parity), qh[8] @66
//                  (2 high index bits per group of 8), scales[8] @74 as IQ2_XS
//   IQ3_XXS (98):  d @0, grid indices [64] @2 (4 weights each, kIQ3XXS), per 32 weights a u32
//                  @66 + 4 i as IQ2_XXS's
//   IQ3_S (110):   d @0, grid low bytes [64] @2, qh[8] @66 (ninth index bit), signs[32] @74,
//                  scales[4] @106 (a nibble per 32 weights); grid kIQ3S
//   IQ1_S (50):    d @0, grid low bytes [32] @2, u16 qh[8] @34: 3 high index bits per group
//                  of 8, scale in bits 12..14, delta sign in bit 15; grid kIQ1S
//   IQ1_M (56):    grid low bytes [32] @0, qh[16] @32 (3 index bits + delta sign per group of
//                  8), scales[8] @48: 3-bit scales per 16 weights, d's 16 bits in the top
//                  nibbles of the four u16
//   IQ4_NL (18, blocks of 32): d @0, nibbles [16] @2 (weight j low, j + 16 high) into
//                  kIQ4NLValues
//   IQ4_XS (136):  d @0, u16 scales_h @2, scales_l[4] @4 (6-bit scales minus 32 per 32
//                  weights), nibbles [128] @8 as IQ4_NL per 32
//   TQ1_0 (54):    base-3 digits, 5 per byte in qs[48] @0 and 4 per byte in qh[4] @48, d @52
//   TQ2_0 (66):    2-bit codes minus 1 in qs[64] @0, d @64
//   MXFP4 (17, blocks of 32): E8M0 scale @0, nibbles [16] @1 (weight j low, j + 16 high)
//                  into kMXFP4Values; value = 2^(e - 128) · kMXFP4Values[nibble]

// True for the types this file defines.
bool is_iquant_family(DType type);

// Calls f.template operator()<T>() with T = type as a compile-time DType (as
// with_kquant_type). `type` must be one of MCMOE_CASE_IQ_TYPES (nothing is called otherwise).
template <typename F>
void with_iquant_type(DType type, F&& f) {
  switch (type) {
    case DType::IQ2_XXS:
      return f.template operator()<DType::IQ2_XXS>();
    case DType::IQ2_XS:
      return f.template operator()<DType::IQ2_XS>();
    case DType::IQ2_S:
      return f.template operator()<DType::IQ2_S>();
    case DType::IQ3_XXS:
      return f.template operator()<DType::IQ3_XXS>();
    case DType::IQ3_S:
      return f.template operator()<DType::IQ3_S>();
    case DType::IQ1_S:
      return f.template operator()<DType::IQ1_S>();
    case DType::IQ1_M:
      return f.template operator()<DType::IQ1_M>();
    case DType::IQ4_NL:
      return f.template operator()<DType::IQ4_NL>();
    case DType::IQ4_XS:
      return f.template operator()<DType::IQ4_XS>();
    case DType::TQ1_0:
      return f.template operator()<DType::TQ1_0>();
    case DType::TQ2_0:
      return f.template operator()<DType::TQ2_0>();
    case DType::MXFP4:
      return f.template operator()<DType::MXFP4>();
    default:
      return;
  }
}

// MXFP4's scale byte as ggml reads it: 2^(e - 127) / 2 (the half undoes the doubled values).
// e = 0xff, NaN in the OCP format, is refused at load (quant/block_check.h).
// Inline and static (internal linkage): the kernels call it per block, and each kernel file
// is compiled with its own ISA flags.
static inline float e8m0_half(uint8_t e) {
  // 2^(e - 128): subnormal for e < 2 (ggml writes those bit patterns directly).
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// gpt-oss's Hugging Face MXFP4 (transformers' convert_moe_packed_tensors): 16 bytes of E2M1
// codes, weight 2 j in the low nibble of byte j and 2 j + 1 in the high one, plus its E8M0 byte
// → one ggml MXFP4 block (17 bytes: the scale, then weight j low and j + 16 high). The codes
// and the scale mean the same values in both (HF: FP4[code] · 2^(s - 127)).
void mxfp4_block_from_hf(const uint8_t* codes16, uint8_t scale, uint8_t* out17);

// IQ1_M keeps its fp16 d in the top nibbles of its four scale words.
// Static inline, as e8m0_half: the kernels call it per block.
static inline uint16_t iq1m_d_bits(const uint8_t* block) {
  uint16_t w[4];
  std::memcpy(w, block + 48, 8);
  return static_cast<uint16_t>((w[0] >> 12) | ((w[1] >> 8) & 0x00f0) | ((w[2] >> 4) & 0x0f00) |
                               (w[3] & 0xf000));
}

// `block` points at one block of `type` (is_iquant_family(type) must hold); out as
// decode_block's (min and dmin zero).
void decode_iquant_block(DType type, const uint8_t* block, IntBlock* out);

}  // namespace mcmoe::quant
