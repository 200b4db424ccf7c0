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
  Q8_0 = 8,
  BF16 = 30,
};

struct DTypeTraits {
  std::string_view name;  // lower-case, as on the command line: "f16", "q8_0"
  int64_t block_size;     // elements per block (1 for plain floats)
  size_t block_bytes;     // bytes per block
  bool quantized;
};

const DTypeTraits& dtype_traits(DType type);
std::optional<DType> dtype_from_ggml_id(uint32_t id);
std::optional<DType> dtype_from_name(std::string_view name);  // "f16", "q4_0", ...
inline std::string_view dtype_name(DType t) { return dtype_traits(t).name; }
// Bytes of one row of n elements; n must be a multiple of the block size.
size_t row_bytes(DType type, int64_t n);

}  // namespace mcmoe
