// Hugging Face tokenizer.json: both merge spellings, added tokens, pre_tokenizer families,
// post-processor BOS, SentencePiece-style (byte_fallback) BPE, and config.json padding.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "synthetic_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

using nlohmann::json;

const std::vector<std::string> kTexts = {"hello world", "  hello\n\nworld  ", "Привет 😀 <|user|>!", "it's 12345",
                                         "hello<|endoftext|>"};

json byte_level_json(const VocabData& v, bool pair_merges, const json& pre) {
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
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

const json kByteLevel = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};

TEST(TokenizerHfJson, MergeFormsAndAddedTokens) {
  const VocabData v = synthetic_gpt2();
  const auto ref = Tokenizer::from_vocab(v);
  for (const bool pairs : {false, true}) {
    ScratchDir dir;
    spit(dir / "tokenizer.json", byte_level_json(v, pairs, kByteLevel).dump());
    const auto tok = Tokenizer::from_hf_dir(dir.path().string());
    EXPECT_EQ(tok->vocab().model, "gpt2");
    EXPECT_EQ(tok->vocab().pre, "gpt-2");
    EXPECT_EQ(tok->vocab().merges, v.merges);
    EXPECT_EQ(tok->token_type(tok->find_token("<|user|>")), TokenType::UserDefined);
    EXPECT_EQ(tok->token_type(tok->find_token("<|endoftext|>")), TokenType::Control);
    EXPECT_FALSE(tok->add_bos());
    for (const auto& s : kTexts) EXPECT_EQ(tok->encode(s), ref->encode(s)) << s;
  }
}

TEST(TokenizerHfJson, Llama3StyleSplitWithPostProcessorBos) {
  VocabData v = synthetic_gpt2();
  const json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern",
                      {{"Regex",
                        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  json j = byte_level_json(v, true, pre);
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", j.dump());
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_EQ(tok->vocab().pre, "llama-bpe");
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), tok->find_token("<|endoftext|>"));
  // \p{N}{1,3}: digits go in threes; "hello" is a token, so it is taken whole (ignore_merges).
  const auto ids = tok->encode("12345 hello");
  EXPECT_EQ(tok->decode(ids), "12345 hello");
  EXPECT_EQ(ids[0], tok->find_token("1"));
  EXPECT_EQ(ids.size(), 3u + 2u + 2u);  // 1 2 3 | 4 5 | Ġ hello
  // A tokenizer_config.json setting wins over the post-processor.
  spit(dir / "tokenizer_config.json", R"({"add_bos_token": false})");
  EXPECT_FALSE(Tokenizer::from_hf_dir(dir.path().string())->add_bos());
}

TEST(TokenizerHfJson, UnknownSplitsAreRejected) {
  const json pre = {{"type", "Sequence"},
                    {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", R"(\d+|\w+)"}}}, {"behavior", "Isolated"}},
                                                   {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", byte_level_json(synthetic_gpt2(), false, pre).dump());
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", R"(/\d+|\w+/)", "no supported family"});
  const json removed = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}};
  spit(dir / "tokenizer.json", byte_level_json(synthetic_gpt2(), false, removed).dump());
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "Removed", "Isolated"});
}

TEST(TokenizerHfJson, SentencePieceStyleWithByteFallback) {
  const VocabData v = synthetic_spm();
  const std::string sp = "\xE2\x96\x81";
  json vocab = json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;
  const json merges = json::array({sp + " h", "l l", sp + "h e", "ll o", sp + "he llo", sp + " w", "o r", sp + "w or",
                                   "l d", sp + "wor ld"});
  const json j = {
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", sp}},
                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}}})}}},
      {"pre_tokenizer", nullptr},
      {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                    {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}}})},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"byte_fallback", true}, {"unk_token", "<unk>"}}}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", j.dump());
  spit(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": 2, "vocab_size": 300})");
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_EQ(tok->vocab().model, "llama");
  EXPECT_TRUE(tok->vocab().add_space_prefix);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->token_type(0), TokenType::Unknown);
  EXPECT_EQ(tok->token_type(3 + 0x41), TokenType::Byte);
  EXPECT_EQ(tok->n_vocab(), 300) << "padded to config.json's vocab_size";
  EXPECT_EQ(tok->token_text(299), "[PAD299]");
  EXPECT_EQ(tok->token_type(299), TokenType::Unused);
  EXPECT_TRUE(tok->add_bos());
  const auto ref = Tokenizer::from_vocab(synthetic_spm());
  for (const std::string s : {"hello world", "hello  worldly Привет 😀"}) {
    EXPECT_EQ(tok->encode(s), ref->encode(s)) << s;
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
  // And through GGUF.
  format::GgufWriter w;
  tok->write_gguf_metadata(w);
  w.write((dir / "v.gguf").string());
  format::GgufFile g((dir / "v.gguf").string());
  const auto back = Tokenizer::from_gguf(g);
  EXPECT_EQ(back->encode("hello  worldly Привет 😀"), tok->encode("hello  worldly Привет 😀"));
}

TEST(TokenizerHfJson, HolesInIdsBecomePadTokens) {
  const json j = {{"pre_tokenizer", kByteLevel},
                  {"added_tokens", json::array({{{"id", 5}, {"content", "<|x|>"}, {"special", true}}})},
                  {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 3}}}, {"merges", json::array({"a b"})}}}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", j.dump());
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_EQ(tok->n_vocab(), 6);
  EXPECT_EQ(tok->token_text(2), "[PAD2]");
  EXPECT_EQ(tok->token_text(4), "[PAD4]");
  EXPECT_EQ(tok->encode("abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(tok->encode("ba"), (std::vector<int32_t>{1, 0}));
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
