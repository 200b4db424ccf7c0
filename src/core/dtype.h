#pragma once
// Element types of weights. The numeric values are ggml's type ids so that a GGUF tensor
// type maps onto DType without a table; only the types listed here are understood.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mcmoe {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  // llama.cpp's i-quants (codebook grids and non-linear 4-bit, quant/iquants.h).
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,   // raw bytes (safetensors U8 / I8: gpt-oss's MXFP4 blocks and scales), not weights
  I32 = 26,  // integer tensors (row indices of low-rank experts' sparse rows), not weights
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,  // ternary
  TQ2_0 = 35,
  MXFP4 = 39,  // OCP microscaling FP4 (E2M1 values, one E8M0 scale per 32)
  // mcmoe's grouped low-bit formats (quant/lowbit.h): b-bit unsigned codes with an f16 scale
  // and f16 min per group of g weights, blocks of 128 weights. Id = 1000 + 10 * b + k with
  // k = 1, 2, 3 for g = 32, 64, 128; far above ggml's ids so they can never collide.
  MQ1_G32 = 1011,
  MQ1_G64 = 1012,
  MQ1_G128 = 1013,
  MQ2_G32 = 1021,
  MQ2_G64 = 1022,
  MQ2_G128 = 1023,
  MQ3_G32 = 1031,
  MQ3_G64 = 1032,
  MQ3_G128 = 1033,
  MQ4_G32 = 1041,
  MQ4_G64 = 1042,
  MQ4_G128 = 1043,
};

// Every DType, for tables and name lookups.
inline constexpr DType kAllDTypes[] = {
    DType::F32,      DType::F16,     DType::Q4_0,     DType::Q4_1,     DType::Q5_0,
    DType::Q5_1,     DType::Q8_0,    DType::Q2_K,     DType::Q3_K,     DType::Q4_K,
    DType::Q5_K,     DType::Q6_K,    DType::IQ2_XXS,  DType::IQ2_XS,   DType::IQ3_XXS,
    DType::IQ1_S,    DType::IQ4_NL,  DType::IQ3_S,    DType::IQ2_S,    DType::IQ4_XS,
    DType::IQ1_M,    DType::TQ1_0,   DType::TQ2_0,    DType::MXFP4,    DType::BF16,
    DType::I8,       DType::I32,     DType::MQ1_G32,  DType::MQ1_G64,  DType::MQ1_G128,
    DType::MQ2_G32,  DType::MQ2_G64, DType::MQ2_G128, DType::MQ3_G32,  DType::MQ3_G64,
    DType::MQ3_G128, DType::MQ4_G32, DType::MQ4_G64,  DType::MQ4_G128,
};

// The mcmoe low-bit type for (bits 1..4, group 32/64/128); nullopt otherwise.
std::optional<DType> mq_dtype(int bits, int64_t group);
// bits and group of an MQ type; false for other types.
bool mq_params(DType type, int* bits, int64_t* group);

struct DTypeTraits {
  std::string_view name;  // lower-case, as on the command line: "f16", "q8_0"
  int64_t block_size;     // elements per block (1 for plain floats)
  size_t block_bytes;     // bytes per block
  bool quantized;
  // Bits per weight including scales and mins, e.g. 2.25 for mq2_g128.
  double bits_per_weight() const { return 8.0 * static_cast<double>(block_bytes) / block_size; }
};

const DTypeTraits& dtype_traits(DType type);
std::optional<DType> dtype_from_ggml_id(uint32_t id);
std::optional<DType> dtype_from_name(std::string_view name);  // "f16", "q4_0", ...
inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }
// Bytes of one row of n elements; n must be a multiple of the block size.
size_t row_bytes(DType type, int64_t n);

}  // namespace mcmoe
