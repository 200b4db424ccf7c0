#pragma once
// The complete, format-neutral description of a tokenizer: what a GGUF file's
// tokenizer.ggml.* keys hold, what a SentencePiece tokenizer.model or a Hugging Face
// tokenizer.json is converted into, and what the encoders are built from. Keeping one
// description is what makes "from_gguf(write_gguf_metadata(x)) encodes like x" hold by
// construction.
#include <cstdint>
#include <string>
#include <vector>

namespace mcmoe::tokenizer {

// Token types, numbered as llama.cpp's tokenizer.ggml.token_type and SentencePiece's
// ModelProto.SentencePiece.Type (the two agree).
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

// The most tokens a vocabulary may have: far above any model's (Gemma 3: 262k), and what a
// corrupted id or size is checked against before tables are sized from it.
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

struct VocabData {
  std::string source;  // file the vocabulary came from, for error messages
  std::string model;   // "llama" (SentencePiece-style BPE) or "gpt2" (byte-level BPE)
  std::string pre;     // pre-tokenizer family for "gpt2" ("gpt-2", "llama-bpe", ...); "default" for "llama"

  std::vector<std::string> tokens;
  std::vector<float> scores;      // one per token (0 when the source has none)
  std::vector<TokenType> types;   // one per token
  std::vector<std::string> merges;  // "left right", rank = index ("gpt2" only)

  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  // "llama": prepend ' ' (SentencePiece add_dummy_prefix). "gpt2": Hugging Face's
  // ByteLevel(add_prefix_space = true): ' ' before every run of text that lacks one.
  bool add_space_prefix = false;
  // "gpt2": a word that is itself a token becomes that token without merging (llama.cpp's
  // ignore_merges, Hugging Face's BPE.ignore_merges). From GGUF: the family's default
  // unless mcmoe.tokenizer.ignore_merges says otherwise; from tokenizer.json: its own flag.
  bool ignore_merges = false;

  // SentencePiece-exact mode ("llama" only). Set when the vocabulary came from a
  // tokenizer.model, and recorded in GGUF by the presence of
  // tokenizer.ggml.remove_extra_whitespaces / tokenizer.ggml.precompiled_charsmap. In this
  // mode encode() reproduces sentencepiece.SentencePieceProcessor.encode() exactly:
  // normalisation by the precompiled charsmap, whitespace collapsing, merges restricted to
  // NORMAL / USER_DEFINED / UNUSED pieces, unknown runs merged. Without it, encode()
  // follows llama.cpp's SPM tokenizer (what the llama.cpp vocabulary tests expect).
  bool sp_exact = false;
  bool remove_extra_whitespaces = false;
  std::string precompiled_charsmap;  // raw blob: u32 trie size, double array, strings
};

}  // namespace mcmoe::tokenizer
