#pragma once
// SentencePiece's normaliser: the precompiled character map (a Darts-clone double-array
// trie over UTF-8 byte strings whose leaves point at NUL-terminated replacement strings;
// e.g. nmt_nfkc = NFKC plus control-character clean-up), longest-prefix replacement, then
// whitespace handling: dummy prefix, ' ' → U+2581, and with remove_extra_whitespaces
// leading/trailing spaces stripped and runs collapsed to one.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/internal.h"

namespace mcmoe::tokenizer::detail {

class SpNormalizer {
 public:
  struct Options {
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
  };
  // `charsmap` may be empty (identity). `source` names the file in error messages.
  SpNormalizer(std::string_view charsmap, Options opts, std::string source);

  // `user` (may be null) matches user-defined pieces, which pass through unchanged.
  std::string normalize(std::string_view input, const ByteTrie* user) const;

 private:
  // The normalised form of the longest rule matching a prefix of `input`, and how many
  // input bytes it consumes.
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view input, const ByteTrie* user) const;

  Options opts_;
  std::string source_;
  std::vector<uint32_t> units_;  // double-array units
  std::string strings_;          // replacement strings, each NUL-terminated
};

}  // namespace mcmoe::tokenizer::detail
