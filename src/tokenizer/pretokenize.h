#pragma once
// Pre-tokenisation for byte-level BPE: the regex splits of each vocabulary family
// (tokenizer.ggml.pre), run with PCRE2 in UTF + Unicode-property mode. As in llama.cpp
// and Hugging Face's Split(behavior = Isolated), each regex of a family splits every piece
// produced by the previous one, and both matches and the text between matches become
// pieces.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mcmoe::tokenizer::detail {

// llama.cpp's flags for a pre-tokenizer type (src/llama-vocab.cpp, llama_vocab::impl::load):
// those that change encoding. clean_spaces only changes llama.cpp's detokenizer, whose
// space clean-up would break decode(encode(x)) == x, so it has no place here.
struct PreFamily {
  std::string name;                  // canonical tokenizer.ggml.pre value
  std::vector<std::string> regexes;  // PCRE2 patterns, applied in order
  bool ignore_merges = false;        // default: a word that is itself a token is not merged
  bool add_bos = false;              // default for add_bos_token
  // Every character of any text lies inside a match of every regex, so the text between
  // matches is always empty. Hugging Face's Split(behavior = Removed, invert = true), which
  // keeps the matches and drops the rest, then splits exactly like Isolated (the
  // tokenizer.json of GPT-4o is written that way). Checked on every code point by a test.
  bool matches_cover_text = false;
};

// The family of a tokenizer.ggml.pre value (aliases resolved), or null when unknown.
const PreFamily* find_pre_family(std::string_view pre);
// The family whose split regexes are exactly `patterns` as written in a tokenizer.json
// (llama.cpp's adapted spellings are accepted too), or null. Where several families share
// the regexes (llama-bpe, dbrx and chatglm-bpe), the first whose ignore_merges default
// equals `ignore_merges` wins, else the first.
const PreFamily* match_pre_family(const std::vector<std::string>& patterns, bool ignore_merges);
// Comma-separated names, for messages.
std::string known_pre_families();

class PreTokenizer {
 public:
  PreTokenizer(const PreFamily& family, const std::string& source);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits `text` (valid UTF-8) into words, appended to `words` as views into `text`.
  void split(std::string_view text, std::vector<std::string_view>& words) const;
  const PreFamily& family() const { return family_; }

 private:
  struct Compiled;
  const PreFamily& family_;
  std::string source_;
  std::vector<std::unique_ptr<Compiled>> regexes_;
};

}  // namespace mcmoe::tokenizer::detail
