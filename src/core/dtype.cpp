#include "core/dtype.h"

#include "core/error.h"

namespace mcmoe {

namespace {
constexpr DTypeTraits kF32{"f32", 1, 4, false};
constexpr DTypeTraits kF16{"f16", 1, 2, false};
constexpr DTypeTraits kBF16{"bf16", 1, 2, false};
// Q8_0: fp16 scale + 32 int8. Q4_0: fp16 scale + 16 bytes of nibbles (value = (q - 8) * d).
constexpr DTypeTraits kQ8_0{"q8_0", 32, 34, true};
constexpr DTypeTraits kQ4_0{"q4_0", 32, 18, true};
}  // namespace

const DTypeTraits& dtype_traits(DType type) {
  switch (type) {
    case DType::F32: return kF32;
    case DType::F16: return kF16;
    case DType::BF16: return kBF16;
    case DType::Q8_0: return kQ8_0;
    case DType::Q4_0: return kQ4_0;
  }
  fail("internal: unknown DType {}", static_cast<uint32_t>(type));
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  switch (id) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 8: return DType::Q8_0;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
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
