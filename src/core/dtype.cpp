#include "core/dtype.h"

#include "core/error.h"

namespace mcmoe {

namespace {
constexpr DTypeTraits kF32{"f32", 1, 4, false};
constexpr DTypeTraits kF16{"f16", 1, 2, false};
constexpr DTypeTraits kBF16{"bf16", 1, 2, false};
constexpr DTypeTraits kI32{"i32", 1, 4, false};
constexpr DTypeTraits kI8{"i8", 1, 1, false};
// ggml's legacy blocks of 32 (fp16 scale [+ fp16 min] + codes [+ 5th-bit mask]).
constexpr DTypeTraits kQ8_0{"q8_0", 32, 34, true};
constexpr DTypeTraits kQ4_0{"q4_0", 32, 18, true};
constexpr DTypeTraits kQ4_1{"q4_1", 32, 20, true};
constexpr DTypeTraits kQ5_0{"q5_0", 32, 22, true};
constexpr DTypeTraits kQ5_1{"q5_1", 32, 24, true};
// ggml's K-quant super-blocks of 256 (struct sizes from ggml-common.h).
constexpr DTypeTraits kQ2_K{"q2_k", 256, 84, true};
constexpr DTypeTraits kQ3_K{"q3_k", 256, 110, true};
constexpr DTypeTraits kQ4_K{"q4_k", 256, 144, true};
constexpr DTypeTraits kQ5_K{"q5_k", 256, 176, true};
constexpr DTypeTraits kQ6_K{"q6_k", 256, 210, true};
// ggml's i-quants, ternary and MXFP4 blocks (struct sizes from ggml-common.h).
constexpr DTypeTraits kIQ2_XXS{"iq2_xxs", 256, 66, true};
constexpr DTypeTraits kIQ2_XS{"iq2_xs", 256, 74, true};
constexpr DTypeTraits kIQ2_S{"iq2_s", 256, 82, true};
constexpr DTypeTraits kIQ3_XXS{"iq3_xxs", 256, 98, true};
constexpr DTypeTraits kIQ3_S{"iq3_s", 256, 110, true};
constexpr DTypeTraits kIQ1_S{"iq1_s", 256, 50, true};
constexpr DTypeTraits kIQ1_M{"iq1_m", 256, 56, true};
constexpr DTypeTraits kIQ4_NL{"iq4_nl", 32, 18, true};
constexpr DTypeTraits kIQ4_XS{"iq4_xs", 256, 136, true};
constexpr DTypeTraits kTQ1_0{"tq1_0", 256, 54, true};
constexpr DTypeTraits kTQ2_0{"tq2_0", 256, 66, true};
constexpr DTypeTraits kMXFP4{"mxfp4", 32, 17, true};
// mcmoe low-bit: per 128 weights, (128 / g) pairs of f16 (scale, min) + 16 * b code bytes.
constexpr DTypeTraits mq(std::string_view name, int bits, int group) {
  return DTypeTraits{name, 128, static_cast<size_t>(4 * (128 / group) + 16 * bits), true};
}
constexpr DTypeTraits kMQ[4][3] = {
    {mq("mq1_g32", 1, 32), mq("mq1_g64", 1, 64), mq("mq1_g128", 1, 128)},
    {mq("mq2_g32", 2, 32), mq("mq2_g64", 2, 64), mq("mq2_g128", 2, 128)},
    {mq("mq3_g32", 3, 32), mq("mq3_g64", 3, 64), mq("mq3_g128", 3, 128)},
    {mq("mq4_g32", 4, 32), mq("mq4_g64", 4, 64), mq("mq4_g128", 4, 128)},
};
}  // namespace

std::optional<DType> mq_dtype(int bits, int64_t group) {
  if (bits < 1 || bits > 4) return std::nullopt;
  const int k = group == 32 ? 1 : group == 64 ? 2 : group == 128 ? 3 : 0;
  if (k == 0) return std::nullopt;
  return static_cast<DType>(1000 + 10 * bits + k);
}

bool mq_params(DType type, int* bits, int64_t* group) {
  const uint32_t id = static_cast<uint32_t>(type);
  if (id < 1011 || id > 1043) return false;
  const int b = static_cast<int>((id - 1000) / 10), k = static_cast<int>((id - 1000) % 10);
  if (b < 1 || b > 4 || k < 1 || k > 3) return false;
  if (bits) *bits = b;
  if (group) *group = int64_t{16} << k;
  return true;
}

const DTypeTraits& dtype_traits(DType type) {
  int bits = 0;
  int64_t group = 0;
  if (mq_params(type, &bits, &group)) {
    return kMQ[bits - 1][group == 32 ? 0 : group == 64 ? 1 : 2];
  }
  switch (type) {
    case DType::F32: return kF32;
    case DType::F16: return kF16;
    case DType::BF16: return kBF16;
    case DType::I32: return kI32;
    case DType::I8:
      return kI8;
    case DType::Q8_0: return kQ8_0;
    case DType::Q4_0: return kQ4_0;
    case DType::Q4_1: return kQ4_1;
    case DType::Q5_0: return kQ5_0;
    case DType::Q5_1: return kQ5_1;
    case DType::Q2_K: return kQ2_K;
    case DType::Q3_K: return kQ3_K;
    case DType::Q4_K: return kQ4_K;
    case DType::Q5_K: return kQ5_K;
    case DType::Q6_K: return kQ6_K;
    case DType::IQ2_XXS: return kIQ2_XXS;
    case DType::IQ2_XS: return kIQ2_XS;
    case DType::IQ2_S: return kIQ2_S;
    case DType::IQ3_XXS: return kIQ3_XXS;
    case DType::IQ3_S: return kIQ3_S;
    case DType::IQ1_S: return kIQ1_S;
    case DType::IQ1_M: return kIQ1_M;
    case DType::IQ4_NL: return kIQ4_NL;
    case DType::IQ4_XS: return kIQ4_XS;
    case DType::TQ1_0: return kTQ1_0;
    case DType::TQ2_0: return kTQ2_0;
    case DType::MXFP4: return kMXFP4;
    default: break;
  }
  fail("internal: unknown DType {}", static_cast<uint32_t>(type));
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  for (DType t : kAllDTypes) {
    if (static_cast<uint32_t>(t) == id) return t;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : kAllDTypes) {
    if (dtype_traits(t).name == name) return t;
  }
  return std::nullopt;
}

size_t row_bytes(DType type, int64_t n) {
  const DTypeTraits& tr = dtype_traits(type);
  if (n % tr.block_size != 0) {
    fail("row of {} elements is not a multiple of the {} block size {}", n, tr.name,
         tr.block_size);
  }
  return static_cast<size_t>(n / tr.block_size) * tr.block_bytes;
}

}  // namespace mcmoe
