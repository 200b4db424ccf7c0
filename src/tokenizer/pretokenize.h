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

struct PreFamily {
  std::string name;                  // canonical tokenizer.ggml.pre value
  std::vector<std::string> regexes;  // PCRE2 patterns, applied in order
  bool ignore_merges = false;        // a word that is itself a token is not merged
  bool add_bos = false;              // llama.cpp's default for add_bos_token
};

// The family of a tokenizer.ggml.pre value (aliases resolved), or null when unknown.
const PreFamily* find_pre_family(std::string_view pre);
// The family whose split regexes are exactly `patterns` as written in a tokenizer.json
// (llama.cpp's adapted spellings are accepted too), or null.
const PreFamily* match_pre_family(const std::vector<std::string>& patterns);
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
