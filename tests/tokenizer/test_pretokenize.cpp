// Pre-tokenizer families: every regex compiles, splits are lossless, and the GPT-2 and
// Llama-3 splits are the documented ones; tokenizer.json spellings map to families.
#include <gtest/gtest.h>

#include <sstream>

#include "tokenizer/pretokenize.h"

namespace mcmoe::tokenizer::detail {
namespace {

std::vector<std::string> split(const std::string& family, const std::string& text) {
  const PreFamily* f = find_pre_family(family);
  EXPECT_NE(f, nullptr) << family;
  if (!f) return {};
  PreTokenizer pre(*f, "test");
  std::vector<std::string_view> words;
  pre.split(text, words);
  return {words.begin(), words.end()};
}

TEST(TokenizerPretokenize, EveryFamilyCompilesAndSplitsLosslessly) {
  const std::string text =
      "Hello, y'all! How're you 😁 ?我想在apple工作1314151天～ Привет  мир\n\n\t x=3.14; ''```\"\"  ​ end  ";
  std::stringstream names(known_pre_families());
  int n = 0;
  for (std::string name; std::getline(names, name, ',');) {
    if (name.starts_with(' ')) name.erase(0, 1);
    SCOPED_TRACE(name);
    const auto words = split(name, text);
    std::string joined;
    for (const auto& w : words) {
      EXPECT_FALSE(w.empty());
      joined += w;
    }
    EXPECT_EQ(joined, text);
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(TokenizerPretokenize, Gpt2AndLlama3Splits) {
  EXPECT_EQ(split("gpt-2", "Hello world's  123"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " 123"}));
  EXPECT_EQ(split("llama-bpe", "Hello world's  12345"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " ", "123", "45"}));
  EXPECT_EQ(split("llama-bpe", "I'LL go\r\n\nnow"),
            (std::vector<std::string>{"I", "'LL", " go", "\r\n\n", "now"}));
  EXPECT_EQ(split("qwen2", "abc 123"), (std::vector<std::string>{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(split("deepseek-llm", "Hi 12\n"), (std::vector<std::string>{"Hi", " ", "12", "\n"}));
}

TEST(TokenizerPretokenize, TokenizerJsonSpellingsMatchFamilies) {
  const std::string llama3_hf =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const PreFamily* f = match_pre_family({llama3_hf});
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name, "llama-bpe");
  EXPECT_TRUE(f->ignore_merges);
  // deepseek-coder's steps, with literal CR/LF and CJK characters as tokenizer.json has them.
  f = match_pre_family({"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", "[一-龥ࠀ-一가-퟿]+", R"(\p{N})"});
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name, "deepseek-coder");
  EXPECT_EQ(match_pre_family({R"(\w+)"}), nullptr);
  EXPECT_EQ(find_pre_family("llama3")->name, "llama-bpe");
  EXPECT_EQ(find_pre_family("no-such"), nullptr);
}

}  // namespace
}  // namespace mcmoe::tokenizer::detail
