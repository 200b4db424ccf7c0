#include "tokenizer/normalizer.h"

#include <cstring>

#include "core/error.h"

namespace mcmoe::tokenizer::detail {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Darts-clone unit layout: bits 0-7 label (bit 31 set marks a leaf unit, whose label
// never matches), bit 8 has_leaf, bit 9 offset scale, bits 10-30 offset; a leaf unit
// holds its value in bits 0-30.
inline uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
inline bool unit_has_leaf(uint32_t u) { return (u >> 8) & 1u; }
inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
inline uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

}  // namespace

SpNormalizer::SpNormalizer(std::string_view blob, Options opts, std::string source)
    : opts_(opts), source_(std::move(source)) {
  if (blob.empty()) return;
  // <u32 trie size><double array><replacement strings>, as sentencepiece's
  // Normalizer::DecodePrecompiledCharsMap reads it (little-endian).
  uint32_t trie_size = 0;
  if (blob.size() <= 4) {
    fail("{}: precompiled_charsmap has {} bytes, too short for its 4-byte header", source_, blob.size());
  }
  std::memcpy(&trie_size, blob.data(), 4);
  if (trie_size >= blob.size() || trie_size > blob.size() - 4 || trie_size % 4 != 0 || trie_size == 0) {
    fail("{}: precompiled_charsmap: trie size {} does not fit the {}-byte blob", source_, trie_size, blob.size());
  }
  units_.resize(trie_size / 4);
  std::memcpy(units_.data(), blob.data() + 4, trie_size);
  strings_ = std::string(blob.substr(4 + trie_size));
  if (strings_.empty() || strings_.back() != '\0') {
    fail("{}: precompiled_charsmap: the replacement strings do not end with a NUL byte", source_);
  }
}

std::pair<std::string_view, size_t> SpNormalizer::normalize_prefix(std::string_view input,
                                                                   const ByteTrie* user) const {
  if (user) {
    const size_t len = user->longest_prefix(input);
    if (len > 0) return {input.substr(0, len), len};
  }
  size_t best_len = 0;
  uint32_t best_value = 0;
  if (!units_.empty()) {
    // Darts-clone commonPrefixSearch from the root, keeping the longest match.
    const size_t n = units_.size();
    size_t node = unit_offset(units_[0]);
    for (size_t i = 0; i < input.size(); ++i) {
      const auto c = static_cast<uint8_t>(input[i]);
      node ^= c;
      if (node >= n) break;
      const uint32_t unit = units_[node];
      if (unit_label(unit) != c) break;
      node ^= unit_offset(unit);
      if (node >= n) break;
      if (unit_has_leaf(unit)) {
        best_len = i + 1;
        best_value = unit_value(units_[node]);
      }
    }
  }
  if (best_len > 0) {
    if (best_value >= strings_.size()) {
      fail("{}: precompiled_charsmap: replacement offset {} is beyond the {}-byte string table", source_,
           best_value, strings_.size());
    }
    return {std::string_view(strings_.data() + best_value), best_len};  // NUL-terminated
  }
  uint32_t cp = 0;
  const size_t len = utf8_decode(input, 0, &cp);
  if (len == 0) return {kReplacementChar, 1};  // malformed: U+FFFD for one byte
  return {input.substr(0, len), len};
}

std::string SpNormalizer::normalize(std::string_view input, const ByteTrie* user) const {
  std::string out;
  if (input.empty()) return out;
  const bool collapse = opts_.remove_extra_whitespaces;
  if (collapse) {  // leading spaces (after normalisation) go
    while (!input.empty()) {
      const auto [piece, consumed] = normalize_prefix(input, user);
      if (piece != " ") break;
      input.remove_prefix(consumed);
    }
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3);
  if (opts_.add_dummy_prefix) out += kSpaceSymbol;
  bool prev_space = collapse;
  while (!input.empty()) {
    auto [piece, consumed] = normalize_prefix(input, user);
    while (prev_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (char c : piece) {
        if (c == ' ') {
          out += kSpaceSymbol;
        } else {
          out += c;
        }
      }
      prev_space = piece.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!collapse) prev_space = false;
  }
  if (collapse) {  // and trailing ones (any U+2581 at the end, as sentencepiece does)
    while (out.size() >= kSpaceSymbol.size() && out.ends_with(kSpaceSymbol)) {
      out.resize(out.size() - kSpaceSymbol.size());
    }
  }
  return out;
}

}  // namespace mcmoe::tokenizer::detail
