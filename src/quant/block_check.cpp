#include "quant/block_check.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "quant/iquants.h"

namespace mcmoe::quant {

namespace {

struct Field {
  size_t offset;
  const char* name;
};

// The fp16 scale fields of one block, by type (layouts in kquants.h, iquants.h, lowbit.h).
std::vector<Field> fp16_fields(DType type) {
  int bits = 0;
  int64_t group = 0;
  if (mq_params(type, &bits, &group)) {
    std::vector<Field> f;
    static const char* const kNames[8] = {
        "scale of group 0", "min of group 0", "scale of group 1", "min of group 1",
        "scale of group 2", "min of group 2", "scale of group 3", "min of group 3"};
    for (int64_t i = 0; i < 2 * (128 / group); ++i)
      f.push_back({static_cast<size_t>(2 * i), kNames[i]});
    return f;
  }
  switch (type) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q5_0:
      return {{0, "d"}};
    case DType::Q4_1:
    case DType::Q5_1:
      return {{0, "d"}, {2, "m"}};
    case DType::Q2_K:
      return {{80, "d"}, {82, "dmin"}};
    case DType::Q3_K:
      return {{108, "d"}};
    case DType::Q4_K:
    case DType::Q5_K:
      return {{0, "d"}, {2, "dmin"}};
    case DType::Q6_K:
      return {{208, "d"}};
    case DType::IQ2_XXS:
    case DType::IQ2_XS:
    case DType::IQ2_S:
    case DType::IQ3_XXS:
    case DType::IQ3_S:
    case DType::IQ1_S:
    case DType::IQ4_NL:
    case DType::IQ4_XS:
      return {{0, "d"}};
    case DType::TQ1_0:
      return {{52, "d"}};
    case DType::TQ2_0:
      return {{64, "d"}};
    default:
      return {};  // floats, I32; IQ1_M and MXFP4 below
  }
}

bool fp16_finite(uint16_t h) {
  return (h & 0x7c00) != 0x7c00;
}

ScaleFault fault(int64_t block, std::string field, uint32_t bits, bool nan) {
  return ScaleFault{block, std::move(field), nan ? "NaN" : "Inf", bits};
}

}  // namespace

std::optional<ScaleFault> find_bad_scale(DType type, const void* data, size_t nbytes) {
  const DTypeTraits& tr = dtype_traits(type);
  if (!tr.quantized) return std::nullopt;
  const auto* p = static_cast<const uint8_t*>(data);
  const int64_t n_blocks = static_cast<int64_t>(nbytes / tr.block_bytes);
  if (type == DType::MXFP4) {
    // E8M0: 0xff is NaN in the OCP format (ggml would read it as 2^127).
    for (int64_t b = 0; b < n_blocks; ++b) {
      if (p[b * 17] == 0xff) return fault(b, "e (E8M0)", 0xff, true);
    }
    return std::nullopt;
  }
  if (type == DType::IQ1_M) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint16_t h = iq1m_d_bits(p + b * tr.block_bytes);
      if (!fp16_finite(h)) return fault(b, "d (top nibbles of the scales)", h, (h & 0x3ff) != 0);
    }
    return std::nullopt;
  }
  const std::vector<Field> fields = fp16_fields(type);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* blk = p + b * tr.block_bytes;
    for (const Field& f : fields) {
      uint16_t h;
      std::memcpy(&h, blk + f.offset, 2);
      if (!fp16_finite(h)) return fault(b, f.name, h, (h & 0x3ff) != 0);
    }
  }
  return std::nullopt;
}

void check_scales(const TensorView& v, std::string_view what) {
  const auto bad = find_bad_scale(v.type, v.data, v.nbytes);
  if (!bad) return;
  const int64_t per_block = dtype_traits(v.type).block_size;
  fail(
      "{}: {} block {} (weights {}..{}): scale field {} is {} (bits 0x{:04x}); the file is "
      "corrupted",
      what, dtype_name(v.type), bad->block, bad->block * per_block,
      (bad->block + 1) * per_block - 1, bad->field, bad->value, bad->bits);
}

}  // namespace mcmoe::quant
