// SentencePiece exactness: the committed fixture (tests/data/tokenizer: mixtral-tiny's
// tokenizer.model, 280 inputs and the ids python sentencepiece 0.1.97 gives them, made by
// make_sp_fixture.py) must be reproduced from the tokenizer.model and from the GGUF
// metadata written from it. Inputs cover whitespace runs, NFKC-mapped characters,
// controls, malformed UTF-8, emoji, English and Russian corpus lines.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

struct Fixture {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

Fixture load_fixture() {
  Fixture f;
  f.inputs = split_inputs(slurp(data_dir() / "mixtral-tiny.inp"));
  f.expected = read_outputs(data_dir() / "mixtral-tiny.out");
  return f;
}

void expect_fixture(const Tokenizer& tok, const char* how) {
  const Fixture f = load_fixture();
  ASSERT_EQ(f.inputs.size(), f.expected.size());
  ASSERT_GE(f.inputs.size(), 200u);
  size_t passed = 0, tokens = 0;
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const auto got = tok.encode(f.inputs[i]);
    tokens += f.expected[i].size();
    if (got == f.expected[i]) {
      ++passed;
    } else {
      ADD_FAILURE() << how << ": input " << i << " '" << f.inputs[i] << "'\n  expected: " << show(f.expected[i])
                    << "\n  got:      " << show(got);
    }
  }
  std::printf("[ sp       ] mixtral-tiny %-16s %zu/%zu inputs (%zu tokens) equal python sentencepiece\n", how, passed,
              f.inputs.size(), tokens);
  EXPECT_EQ(passed, f.inputs.size());
}

std::unique_ptr<Tokenizer> fixture_tokenizer() {
  return Tokenizer::from_hf_dir((data_dir() / "mixtral-tiny").string());
}

TEST(TokenizerSentencePiece, FixtureMatchesPythonSentencepiece) { expect_fixture(*fixture_tokenizer(), "tokenizer.model"); }

TEST(TokenizerSentencePiece, GgufMetadataKeepsExactness) {
  const auto tok = fixture_tokenizer();
  ScratchDir tmp;
  format::GgufWriter w;
  tok->write_gguf_metadata(w);
  const std::string path = (tmp / "vocab.gguf").string();
  w.write(path);
  format::GgufFile g(path);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "default");
  EXPECT_TRUE(g.get_bool("tokenizer.ggml.remove_extra_whitespaces"));
  EXPECT_TRUE(g.get_bool("tokenizer.ggml.add_space_prefix"));
  EXPECT_GT(g.get_array("tokenizer.ggml.precompiled_charsmap").items.size(), 1000u);
  EXPECT_EQ(g.get_array("tokenizer.ggml.tokens").items.size(), 2048u);
  EXPECT_EQ(g.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(g.get_uint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(g.get_uint("tokenizer.ggml.unknown_token_id"), 0u);
  const auto back = Tokenizer::from_gguf(g);
  EXPECT_TRUE(back->vocab().sp_exact);
  expect_fixture(*back, "from_gguf");
}

TEST(TokenizerSentencePiece, ModelFields) {
  const auto tok = fixture_tokenizer();
  EXPECT_EQ(tok->n_vocab(), 2048);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->pad_id(), -1);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  EXPECT_EQ(tok->token_type(0), TokenType::Unknown);
  EXPECT_EQ(tok->token_type(1), TokenType::Control);
  EXPECT_EQ(tok->token_type(3), TokenType::Byte);
  EXPECT_EQ(tok->token_text(3), "<0x00>");
  EXPECT_EQ(tok->token_to_piece(3), std::string(1, '\0'));
  EXPECT_EQ(tok->token_to_piece(3 + 0x41), "A");
  EXPECT_EQ(tok->token_text(263), "\xE2\x96\x81the");
  EXPECT_EQ(tok->token_to_piece(263), " the");
  EXPECT_EQ(tok->vocab().scores[260], -1.0f);
}

TEST(TokenizerSentencePiece, DecodeDropsTheDummyPrefix) {
  const auto tok = fixture_tokenizer();
  for (const std::string s : {"Hello world", "Once upon a time, the prince said", "Привет, мир!", "a-b c"}) {
    const auto ids = tok->encode(s);
    EXPECT_EQ(tok->decode(ids), s);
    std::vector<int32_t> with_bos{tok->bos_id()};
    with_bos.insert(with_bos.end(), ids.begin(), ids.end());
    with_bos.push_back(tok->eos_id());
    EXPECT_EQ(tok->decode(with_bos), s) << "BOS/EOS are not text";
  }
  // The normaliser is lossy by design (NFKC, whitespace collapsing).
  EXPECT_EQ(tok->decode(tok->encode("  ﬁne   day  ")), "fine day");
}

TEST(TokenizerSentencePiece, ParseSpecialOnlyWhenAsked) {
  const auto tok = fixture_tokenizer();
  const auto plain = tok->encode("<s>Hi");
  EXPECT_NE(plain.front(), 1) << "control tokens in text stay text";
  const auto special = tok->encode_with_special("<s>Hi");
  ASSERT_FALSE(special.empty());
  EXPECT_EQ(special.front(), 1);
  const auto hi = tok->encode("Hi");
  EXPECT_EQ(std::vector<int32_t>(special.begin() + 1, special.end()), hi);
}

// The model directory the engine reads (config.json, tokenizer_config.json, golden ids).
TEST(TokenizerSentencePiece, SharedMixtralTinyGoldenPrompt) {
  const fs::path dir = shared_dir() / "models" / "mixtral-tiny";
  if (!fs::exists(dir / "golden.json")) GTEST_SKIP() << dir << " is absent";
  const auto golden = nlohmann::json::parse(slurp(dir / "golden.json"));
  const auto tok = Tokenizer::from_hf_dir(dir.string());
  std::vector<int32_t> ids;
  if (tok->add_bos()) ids.push_back(tok->bos_id());
  const auto body = tok->encode(golden["prompt"].get<std::string>());
  ids.insert(ids.end(), body.begin(), body.end());
  EXPECT_EQ(ids, golden["ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(tok->decode(body), golden["prompt"].get<std::string>());
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
