#pragma once
// Internal pieces of the tokenizer layer shared between its .cpp files.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mcmoe::tokenizer::detail {

// ---- UTF-8 -------------------------------------------------------------------------

// Sequence length announced by a lead byte (continuation bytes count as 1), as the
// SentencePiece and llama.cpp tokenizers split text into characters.
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}
// Decodes one well-formed code point at s[pos] (rejecting overlong forms, surrogates and
// values above U+10FFFF). Returns its length, or 0 when the bytes there are malformed.
size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp);
void utf8_append(std::string& out, uint32_t cp);
// Replaces every malformed byte by U+FFFD, as llama.cpp does before pre-tokenizing.
std::string utf8_sanitize(std::string_view s);

// ---- byte trie ---------------------------------------------------------------------

// A small byte trie for prefix matching of special / user-defined tokens.
class ByteTrie {
 public:
  ByteTrie();
  void insert(std::string_view key, int32_t value);
  bool empty() const { return nodes_.size() == 1; }
  // Calls f(length, value) for every key that is a prefix of s, shortest first.
  template <typename F>
  void for_each_prefix(std::string_view s, F&& f) const {
    int32_t node = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      node = child(node, static_cast<uint8_t>(s[i]));
      if (node < 0) return;
      if (nodes_[node].value >= 0) f(i + 1, nodes_[node].value);
    }
  }
  // Length of the longest key that is a prefix of s (0 when none); its value in *value.
  size_t longest_prefix(std::string_view s, int32_t* value = nullptr) const;

 private:
  struct Node {
    int32_t value = -1;
    std::vector<std::pair<uint8_t, int32_t>> kids;  // sorted by byte
  };
  int32_t child(int32_t node, uint8_t b) const;
  std::vector<Node> nodes_;
  std::array<int32_t, 256> root_;  // the root's children, the hot lookup
};

// ---- loaders and builders ------------------------------------------------------------

VocabData read_gguf_vocab(const format::GgufFile& gguf);
void write_gguf_vocab(const VocabData& v, format::GgufWriter& w);
// SentencePiece ModelProto (tokenizer.model) → VocabData with sp_exact set.
VocabData read_sentencepiece_model(const std::string& path);
// Hugging Face tokenizer.json → VocabData.
VocabData read_hf_tokenizer_json(const std::string& path);
// tokenizer_config.json and config.json of a Hugging Face directory: BOS/EOS ids and
// add_bos/add_eos, and padding of the table ("[PADn]", unused) up to config.json's
// vocab_size so that ids cover the model's embedding rows.
void apply_hf_config_files(const std::string& dir, VocabData& v);
// Checks sizes and ranges; `keys` names the source's keys in messages.
struct KeyNames {
  std::string tokens, scores, types, bos, eos, unk, pad, add_bos, add_eos;
};
void validate_vocab(const VocabData& v, const KeyNames& keys);

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData v);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(VocabData v);

}  // namespace mcmoe::tokenizer::detail
