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

const json kByteLevel = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};

TEST(TokenizerHfJson, MergeFormsAndAddedTokens) {
  const VocabData v = synthetic_gpt2();
  const auto ref = Tokenizer::from_vocab(v);
  for (const bool pairs : {false, true}) {
    ScratchDir dir;
    spit(dir / "tokenizer.json", byte_level_tokenizer_json(v, pairs, kByteLevel).dump());
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
  v.ignore_merges = true;  // as Llama 3's tokenizer.json
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
  json j = byte_level_tokenizer_json(v, true, pre);
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", j.dump());
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_EQ(tok->vocab().pre, "llama-bpe");
  EXPECT_TRUE(tok->vocab().ignore_merges);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), tok->find_token("<|endoftext|>"));
  // \p{N}{1,3}: digits go in threes.
  const auto ids = tok->encode("12345 hello");
  EXPECT_EQ(tok->decode(ids), "12345 hello");
  EXPECT_EQ(ids[0], tok->find_token("1"));
  EXPECT_EQ(ids.size(), 3u + 2u + 2u);  // 1 2 3 | 4 5 | Ġ hello
  // A tokenizer_config.json setting wins over the post-processor.
  spit(dir / "tokenizer_config.json", R"({"add_bos_token": false})");
  EXPECT_FALSE(Tokenizer::from_hf_dir(dir.path().string())->add_bos());
}

json split_step(const std::string& re, const std::string& behavior = "Isolated", bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", behavior}, {"invert", invert}};
}
json sequence(std::initializer_list<json> steps) {
  json list = json::array();
  for (const json& s : steps) list.push_back(s);
  list.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", list}};
}

// A pre_tokenizer is accepted only when it splits exactly like one of llama.cpp's types;
// anything else is an error naming what was found, never a fallback to another type.
TEST(TokenizerHfJson, PreTokenizersThatMatchNoLlamaCppTypeAreRejected) {
  ScratchDir dir;
  const auto load = [&](const json& pre) {
    spit(dir / "tokenizer.json", byte_level_tokenizer_json(synthetic_gpt2(), false, pre).dump());
    return Tokenizer::from_hf_dir(dir.path().string());
  };
  expect_error([&] { load(sequence({split_step(R"(\d+|\w+)")})); },
               {"tokenizer.json", R"(/\d+|\w+/)", "no supported llama.cpp pre-tokenizer type"});
  expect_error([&] { load({{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}}); },
               {"tokenizer.json", "Removed", "Isolated"});
  expect_error([&] { load(sequence({split_step(R"(\p{N})", "Contiguous")})); }, {"tokenizer.json", "'Contiguous'"});
  expect_error([&] { load(sequence({split_step(R"(\p{N})", "MergedWithPrevious")})); }, {"'MergedWithPrevious'"});
  // GPT-4o's tokenizer.json keeps only the matches (Removed, inverted); its regex leaves no
  // text between matches, so that is the gpt-4o type. deepseek-v3's first regex
  // (\p{N}{1,3}) does leave text between matches, which Removed would drop.
  const std::string gpt4o =
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  EXPECT_EQ(load(sequence({split_step(gpt4o, "Removed", true)}))->vocab().pre, "gpt-4o");
  EXPECT_EQ(load(sequence({split_step(gpt4o)}))->vocab().pre, "gpt-4o");
  const std::string ds3_main =
      R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const json ds3_cjk = split_step("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+");
  EXPECT_EQ(load(sequence({split_step(R"(\p{N}{1,3})"), ds3_cjk, split_step(ds3_main)}))->vocab().pre, "deepseek-v3");
  expect_error([&] { load(sequence({split_step(R"(\p{N}{1,3})", "Removed", true), ds3_cjk, split_step(ds3_main)})); },
               {"tokenizer.json", R"(/\p{N}{1,3}/)", "drops the text between matches", "deepseek-v3"});
  // Steps after ByteLevel would see its byte characters.
  const json after = {{"type", "Sequence"},
                      {"pretokenizers", json::array({{{"type", "ByteLevel"}, {"use_regex", true}},
                                                     {{"type", "Digits"}, {"individual_digits", true}}})}};
  expect_error([&] { load(after); }, {"tokenizer.json", "'Digits' after ByteLevel"});
  expect_error([&] { load({{"type", "Punctuation"}}); }, {"tokenizer.json", "type 'Punctuation'"});
  // BPE options llama.cpp has no counterpart for.
  json j = byte_level_tokenizer_json(synthetic_gpt2(), false, kByteLevel);
  j["model"]["continuing_subword_prefix"] = "##";
  spit(dir / "tokenizer.json", j.dump());
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"model.continuing_subword_prefix", "##"});
  j["model"]["continuing_subword_prefix"] = "";  // as GPT-4o's file: the same as none
  spit(dir / "tokenizer.json", j.dump());
  EXPECT_EQ(Tokenizer::from_hf_dir(dir.path().string())->vocab().pre, "gpt-2");
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

// "abc" is a token that no merge sequence reaches ("a b" then "b c" cannot meet), so only
// ignore_merges (Hugging Face's BPE flag; llama.cpp's for Llama 3) yields it.
TEST(TokenizerHfJson, IgnoreMergesFollowsTheFileAndSurvivesGguf) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  const json merges = json::array({"a b", "b c"});
  for (const bool ignore : {false, true}) {
    SCOPED_TRACE(ignore);
    json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    if (ignore) model["ignore_merges"] = true;  // absent means false, as in Hugging Face
    ScratchDir dir;
    spit(dir / "tokenizer.json", json{{"pre_tokenizer", kByteLevel}, {"model", model}}.dump());
    const auto tok = Tokenizer::from_hf_dir(dir.path().string());
    EXPECT_EQ(tok->vocab().ignore_merges, ignore);
    const std::vector<int32_t> want = ignore ? std::vector<int32_t>{5} : std::vector<int32_t>{3, 2};
    EXPECT_EQ(tok->encode("abc"), want);
    EXPECT_EQ(tok->encode("abcabc"), (std::vector<int32_t>{3, 2, 3, 2})) << "not a token: merged as usual";
    // gpt-2's llama.cpp default is false: true travels in mcmoe.tokenizer.ignore_merges.
    format::GgufWriter w;
    tok->write_gguf_metadata(w);
    w.write((dir / "v.gguf").string());
    format::GgufFile g((dir / "v.gguf").string());
    EXPECT_EQ(g.has("mcmoe.tokenizer.ignore_merges"), ignore);
    EXPECT_EQ(Tokenizer::from_gguf(g)->encode("abc"), want);
  }
}

// ByteLevel(add_prefix_space = true): Hugging Face prefixes ' ' to every run of text
// between added tokens that lacks one, before the GPT-2 regex.
TEST(TokenizerHfJson, ByteLevelAddPrefixSpace) {
  const VocabData v = synthetic_gpt2();
  const auto plain = Tokenizer::from_vocab(v);
  const json prefixed = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  ScratchDir dir;
  spit(dir / "tokenizer.json", byte_level_tokenizer_json(v, false, prefixed).dump());
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_TRUE(tok->vocab().add_space_prefix);
  EXPECT_EQ(tok->encode("world"), plain->encode(" world"));
  EXPECT_EQ(tok->encode(" world"), plain->encode(" world")) << "a run that starts with ' ' is left alone";
  const int32_t user = tok->find_token("<|user|>");
  std::vector<int32_t> want = plain->encode(" hello");
  want.push_back(user);
  for (int32_t id : plain->encode(" world")) want.push_back(id);
  EXPECT_EQ(tok->encode("hello<|user|>world"), want);
  EXPECT_EQ(tok->decode(tok->encode("hello world")), "hello world") << "the added space is dropped again";
  // Inside a Sequence after splits Hugging Face would prefix every piece: refused.
  const json seq = {{"type", "Sequence"},
                    {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, prefixed})}};
  spit(dir / "tokenizer.json", byte_level_tokenizer_json(v, false, seq).dump());
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "add_prefix_space", "Split/Digits"});
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
