#pragma once
// Tokenizers: SentencePiece-style BPE with byte fallback (llama.cpp's "llama" vocabulary)
// and GPT-2 byte-level BPE ("gpt2"), loaded from GGUF tokenizer.ggml.* metadata or from a
// Hugging Face directory (tokenizer.model or tokenizer.json), and written back to GGUF so
// that a converted model tokenizes exactly like its source.
//
// encode() follows llama.cpp's llama_tokenize(add_special = false, parse_special = false):
// no BOS/EOS is added and control tokens written in the text stay text, while
// user-defined (added, non-special) tokens are matched. A vocabulary read from a
// SentencePiece tokenizer.model encodes exactly like sentencepiece's own encoder instead
// (normalisation included), which is what perplexity against a PyTorch reference needs.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab.h"

namespace mcmoe::format {
class GgufFile;
class GgufWriter;
}  // namespace mcmoe::format

namespace mcmoe::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;  // token_to_id_ holds views into v_
  Tokenizer& operator=(const Tokenizer&) = delete;

  // From the tokenizer.ggml.* keys. Throws Error naming the file and key when a key is
  // missing, of the wrong type, inconsistent (array lengths) or out of range (special ids).
  static std::unique_ptr<Tokenizer> from_gguf(const format::GgufFile& gguf);
  // From a Hugging Face directory: tokenizer.model (SentencePiece protobuf) when present,
  // else tokenizer.json; tokenizer_config.json and config.json refine BOS/EOS and add_bos.
  static std::unique_ptr<Tokenizer> from_hf_dir(const std::string& dir);
  // From an already assembled description (validated here).
  static std::unique_ptr<Tokenizer> from_vocab(VocabData vocab);

  // Exactly the text: no BOS/EOS added; control tokens in the text are not parsed.
  std::vector<int32_t> encode(std::string_view text) const { return encode_impl(text, false); }
  // As encode(), but control tokens spelled in the text (e.g. "<s>", "<|im_start|>") become
  // their ids, as llama.cpp's parse_special = true (chat templates).
  std::vector<int32_t> encode_with_special(std::string_view text) const { return encode_impl(text, true); }

  // The raw bytes the token stands for: byte-fallback <0xNN> gives that byte, SentencePiece
  // '▁' gives ' ', GPT-2 byte-level characters are mapped back to bytes; control and
  // user-defined tokens give their text. Out-of-range ids throw Error.
  std::string token_to_piece(int32_t id) const {
    check_id(id);
    return pieces_[id];
  }
  // Concatenated pieces. Control tokens (BOS, EOS, ...) contribute nothing; with
  // add_space_prefix (SentencePiece) the first text piece loses one leading space, the
  // rule of llama.cpp's detokenizer and of sentencepiece's decoder, so that
  // decode(encode(x)) == x.
  std::string decode(std::span<const int32_t> ids) const;

  int32_t bos_id() const { return v_.bos_id; }
  int32_t eos_id() const { return v_.eos_id; }
  int32_t unk_id() const { return v_.unk_id; }
  int32_t pad_id() const { return v_.pad_id; }
  bool add_bos() const { return v_.add_bos; }
  bool add_eos() const { return v_.add_eos; }
  int32_t n_vocab() const { return static_cast<int32_t>(v_.tokens.size()); }

  const std::string& token_text(int32_t id) const;  // as stored in the vocabulary
  TokenType token_type(int32_t id) const;
  int32_t find_token(std::string_view text) const;  // -1 when absent
  const VocabData& vocab() const { return v_; }

  // llama.cpp-compatible tokenizer.ggml.* keys (model, pre, tokens, scores, token_type,
  // merges, special ids, add_bos/add_eos/add_space_prefix) plus what exact SentencePiece
  // encoding needs (precompiled_charsmap, remove_extra_whitespaces).
  void write_gguf_metadata(format::GgufWriter& w) const;

 protected:
  explicit Tokenizer(VocabData v);
  virtual std::vector<int32_t> encode_impl(std::string_view text, bool parse_special) const = 0;

  // A run of input: raw text, or a special token matched in it (token >= 0).
  struct Fragment {
    int32_t token = -1;
    std::string_view text;
  };
  // llama.cpp's special-token partition: user-defined tokens (and with parse_special
  // control/unknown tokens too) are cut out of the text, longest token first.
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void check_id(int32_t id) const;

  VocabData v_;
  std::unordered_map<std::string_view, int32_t> token_to_id_;  // views into v_.tokens
  std::vector<std::string> pieces_;  // token_to_piece of every id; each model type fills it

 private:
  struct SpecialTrie;
  std::shared_ptr<const SpecialTrie> specials_;  // for partition()
};

}  // namespace mcmoe::tokenizer
