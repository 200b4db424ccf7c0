// decode(encode(x)) == x where no normalisation is involved: SentencePiece-style BPE in
// llama.cpp's flavour (byte fallback keeps every byte) and GPT-2 byte-level BPE, on
// ASCII, whitespace runs, Russian, CJK and emoji (ZWJ sequences included).
#include <gtest/gtest.h>

#include "format/gguf.h"
#include "synthetic_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

const std::vector<std::string>& texts() {
  static const std::vector<std::string> k = {
      "",
      " ",
      "\n",
      "hello world",
      "Hello World!",
      " leading space",
      "  two  spaces  and trailing   ",
      "tabs\tand\nnewlines\n\n\r\n",
      "Привет, мир! Как дела? Ёлка — «ёлочка».",
      "日本語のテキストと中文",
      "emoji 😀🦙🚀 and ZWJ 👩\u200d👩\u200d👧 and flags 🇺🇦",
      "mixed ÅΩ ﬁ ① ½ \u00a0nbsp\u3000ideographic",
      "code: int main() { return 0; } // ok",
      "3333333 1,234.56",
  };
  return k;
}

void expect_round_trip(const Tokenizer& tok, const std::string& s) {
  const auto ids = tok.encode(s);
  EXPECT_EQ(tok.decode(ids), s) << tok.vocab().source << ": ids " << show(ids);
}

TEST(TokenizerRoundTrip, SyntheticSpm) {
  const auto tok = Tokenizer::from_vocab(synthetic_spm());
  const int32_t hello = tok->find_token("\xE2\x96\x81hello"), world = tok->find_token("\xE2\x96\x81world");
  EXPECT_EQ(tok->encode("hello world"), (std::vector<int32_t>{hello, world}));
  // 'П' is not a piece: its two UTF-8 bytes come out as byte tokens.
  const auto ids = tok->encode("П");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], tok->find_token("\xE2\x96\x81"));
  EXPECT_EQ(ids[1], 3 + 0xD0);
  EXPECT_EQ(ids[2], 3 + 0x9F);
  for (const auto& s : texts()) expect_round_trip(*tok, s);
}

TEST(TokenizerRoundTrip, SyntheticByteLevel) {
  const auto tok = Tokenizer::from_vocab(synthetic_gpt2());
  const int32_t hello = tok->find_token("hello"), world = tok->find_token("\xC4\xA0world");
  EXPECT_EQ(tok->encode("hello world"), (std::vector<int32_t>{hello, world}));
  EXPECT_EQ(tok->token_to_piece(world), " world");
  EXPECT_EQ(tok->token_to_piece(tok->find_token("\xC4\x8A")), "\n");
  for (const auto& s : texts()) expect_round_trip(*tok, s);
  // Malformed UTF-8 is read as U+FFFD, as llama.cpp does.
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerRoundTrip, UserDefinedAndControlTokens) {
  const auto tok = Tokenizer::from_vocab(synthetic_gpt2());
  const int32_t user = tok->find_token("<|user|>"), eot = tok->find_token("<|endoftext|>");
  const auto ids = tok->encode("hello<|user|> world<|endoftext|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), user), 1) << "user-defined tokens are always matched";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), eot), 0) << "control tokens stay text without parse_special";
  const auto special = tok->encode_with_special("hello<|endoftext|>");
  EXPECT_EQ(special.back(), eot);
  EXPECT_EQ(tok->decode(ids), "hello<|user|> world<|endoftext|>");
  EXPECT_EQ(tok->decode(special), "hello") << "control tokens are not text";
}

TEST(TokenizerRoundTrip, PeerVocabularies) {
  const fs::path dir = shared_dir() / "peer-tests" / "llama.cpp-tokenizer";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is absent";
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().filename().string());
    format::GgufFile g(e.path().string());
    const std::string model = g.get_string("tokenizer.ggml.model", "");
    if (model != "llama" && model != "gpt2") continue;  // not an SPM / BPE vocabulary
    const auto tok = Tokenizer::from_gguf(g);
    for (const auto& s : texts()) expect_round_trip(*tok, s);
    const fs::path inp = e.path().string() + ".inp";
    if (fs::exists(inp)) {
      for (const auto& s : split_inputs(slurp(inp))) expect_round_trip(*tok, s);
    }
  }
}

TEST(TokenizerRoundTrip, LongTextMatchesPiecewiseForByteLevel) {
  // Word-level caching must not change results: a long text of repeated words encodes
  // to the repetition of one copy's ids (each copy splits into the same words).
  const auto tok = Tokenizer::from_vocab(synthetic_gpt2());
  const std::string unit = " hello world Привет 😀";
  std::string text;
  for (int i = 0; i < 2000; ++i) text += unit;
  const auto one = tok->encode(unit);
  const auto all = tok->encode(text);
  ASSERT_EQ(all.size(), one.size() * 2000);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], one[i % one.size()]) << i;
  EXPECT_EQ(tok->decode(all), text);
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
