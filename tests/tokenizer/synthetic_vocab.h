#pragma once
// Tiny hand-made vocabularies, so that the encoders can be tested without ../shared.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/vocab.h"

namespace mcmoe::tokenizer::test {

inline void add_token(VocabData& v, std::string text, TokenType type, float score = 0.0f) {
  v.tokens.push_back(std::move(text));
  v.types.push_back(type);
  v.scores.push_back(score);
}

// SentencePiece-style: <unk> <s> </s>, 256 byte tokens, then pieces whose scores make
// "hello world" merge into ▁hello ▁world.
inline VocabData synthetic_spm() {
  VocabData v;
  v.source = "synthetic-spm";
  v.model = "llama";
  v.pre = "default";
  add_token(v, "<unk>", TokenType::Unknown);
  add_token(v, "<s>", TokenType::Control);
  add_token(v, "</s>", TokenType::Control);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    add_token(v, std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">", TokenType::Byte);
  }
  const std::string sp = "\xE2\x96\x81";
  const std::vector<std::string> pieces = {sp + "h", "ll", sp + "he", "llo", sp + "hello", sp + "w", "or", sp + "wor",
                                           "ld", sp + "world", sp, "h", "e", "l", "o", "w", "r", "d"};
  for (size_t i = 0; i < pieces.size(); ++i) add_token(v, pieces[i], TokenType::Normal, -static_cast<float>(i));
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

// GPT-2 byte-level: the 256 byte characters, merges forming "hello" and "Ġworld", one
// user-defined and one control token.
inline VocabData synthetic_gpt2() {
  VocabData v;
  v.source = "synthetic-gpt2";
  v.model = "gpt2";
  v.pre = "gpt-2";
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? b : 256 + n++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    add_token(v, s, TokenType::Normal);
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xC4\xA0", "w"}, {"o", "r"},
      {"\xC4\xA0w", "or"}, {"l", "d"}, {"\xC4\xA0wor", "ld"}};
  for (const auto& [a, b] : merges) {
    v.merges.push_back(a + " " + b);
    add_token(v, a + b, TokenType::Normal);
  }
  add_token(v, "<|user|>", TokenType::UserDefined);
  add_token(v, "<|endoftext|>", TokenType::Control);
  v.bos_id = v.eos_id = static_cast<int32_t>(v.tokens.size()) - 1;
  return v;
}

// A Hugging Face tokenizer.json for a byte-level vocabulary: control and user-defined
// tokens as added_tokens (special = control), merges as "a b" or as ["a", "b"].
inline nlohmann::json byte_level_tokenizer_json(const VocabData& v, bool pair_merges, const nlohmann::json& pre) {
  using nlohmann::json;
  json vocab = json::object(), added = json::array(), merges = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == TokenType::Control || v.types[i] == TokenType::UserDefined) {
      added.push_back({{"id", i}, {"content", v.tokens[i]}, {"special", v.types[i] == TokenType::Control}});
    } else {
      vocab[v.tokens[i]] = i;
    }
  }
  for (const auto& m : v.merges) {
    const size_t sp = m.find(' ');
    if (pair_merges) {
      merges.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
    } else {
      merges.push_back(m);
    }
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", v.ignore_merges}}}};
}

}  // namespace mcmoe::tokenizer::test
