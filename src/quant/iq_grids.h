#pragma once
// The codebooks of llama.cpp's i-quants and the value tables of IQ4_NL / IQ4_XS and MXFP4:
// facts of the formats, the same numbers every reader of these files must use. Source: the
// tables of ggml-common.h (ggml commit d99724f2, MIT license, © the ggml authors), stored in
// iq_grids.cpp as per-element level indices and expanded at compile time. Every grid entry
// is checked against blocks dequantized by ggml itself (tests/quant/iquants_test.cpp).
#include <array>
#include <cstdint>

namespace mcmoe::quant::iq_grids {

// Magnitudes of 8 weights per entry (byte j = weight j), levels {8, 25, 43}.
extern const std::array<uint64_t, 256> kIQ2XXS;
extern const std::array<uint64_t, 512> kIQ2XS;
extern const std::array<uint64_t, 1024> kIQ2S;
// Magnitudes of 4 weights per entry: IQ3_XXS levels {4, 12, ..., 52, 62}, IQ3_S {1, 3, ..., 15}.
extern const std::array<uint32_t, 256> kIQ3XXS;
extern const std::array<uint32_t, 512> kIQ3S;
// Signed values of 8 weights per entry (int8 bytes -1, 0, 1).
extern const std::array<uint64_t, 2048> kIQ1S;

// 7 stored sign bits → 8 (the eighth makes the count of negatives even): bit j set = weight j
// negative. Computed, not copied: i | parity(i) << 7.
extern const std::array<uint8_t, 128> kSigns7;

// IQ4_NL / IQ4_XS: the 16 non-linear 4-bit levels.
extern const std::array<int8_t, 16> kIQ4NLValues;
// MXFP4: the 16 E2M1 values doubled (so they are integers; the scale carries the half).
extern const std::array<int8_t, 16> kMXFP4Values;

}  // namespace mcmoe::quant::iq_grids
