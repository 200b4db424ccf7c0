// Pre-tokenizer families: every regex compiles, splits are lossless, and the GPT-2 and
// Llama-3 splits are the documented ones; tokenizer.json spellings map to families.
#include <gtest/gtest.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <sstream>

#include "tokenizer/internal.h"
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
  const PreFamily* f = match_pre_family({llama3_hf}, true);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name, "llama-bpe");
  EXPECT_TRUE(f->ignore_merges);
  // deepseek-coder's steps, with literal CR/LF and CJK characters as tokenizer.json has them.
  f = match_pre_family({"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", "[一-龥ࠀ-一가-퟿]+", R"(\p{N})"}, false);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name, "deepseek-coder");
  EXPECT_EQ(match_pre_family({R"(\w+)"}, false), nullptr);
  // Llama 3, DBRX and GLM-4 share the regex; the merge flag tells Llama 3 from the others.
  EXPECT_EQ(match_pre_family({llama3_hf}, false)->name, "dbrx");
  EXPECT_EQ(find_pre_family("glm4")->name, "chatglm-bpe");
  EXPECT_EQ(find_pre_family("deepseek-r1-qwen")->name, "qwen2");
  EXPECT_EQ(find_pre_family("olmo")->name, "gpt-2");
  EXPECT_EQ(find_pre_family("llama3")->name, "llama-bpe");
  EXPECT_EQ(find_pre_family("no-such"), nullptr);
}

// PreFamily::matches_cover_text lets Hugging Face's Split(Removed, invert) stand for
// Isolated. It holds when, at any position, some alternative matches at least the
// character there whatever follows it; the families' catch-all alternatives (\s+ and
// ` ?[^\s\p{L}\p{N}]+` after the letter and number ones) use no look-behind, so trying
// every code point alone, anchored, checks every position of every text.
TEST(TokenizerPretokenize, CoveringFamiliesMatchEveryCodePoint) {
  std::stringstream names(known_pre_families());
  int checked = 0;
  for (std::string name; std::getline(names, name, ',');) {
    if (name.starts_with(' ')) name.erase(0, 1);
    const PreFamily* f = find_pre_family(name);
    ASSERT_NE(f, nullptr) << name;
    if (f->name != name || !f->matches_cover_text) continue;  // aliases: once per family
    for (const std::string& re : f->regexes) {
      int err = 0;
      PCRE2_SIZE err_off = 0;
      pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
      ASSERT_NE(code, nullptr) << re;
      pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
      pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
      size_t uncovered = 0;
      std::string ch;
      for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // surrogates are not characters
        ch.clear();
        utf8_append(ch, cp);
        const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(ch.data()), ch.size(), 0, PCRE2_ANCHORED, md,
                                   nullptr);
        if (rc < 0 || pcre2_get_ovector_pointer(md)[1] != ch.size()) {
          if (++uncovered <= 3) ADD_FAILURE() << f->name << ": U+" << std::hex << cp << " is not matched by /" << re << "/";
        }
      }
      EXPECT_EQ(uncovered, 0u) << f->name;
      pcre2_match_data_free(md);
      pcre2_code_free(code);
    }
    ++checked;
  }
  EXPECT_GE(checked, 7) << "gpt-2, llama-bpe, dbrx, qwen2, chatglm-bpe, tekken and gpt-4o cover the text";
  // deepseek-v3's first split (\p{N}{1,3}) covers only digits: its Removed form is refused.
  EXPECT_FALSE(find_pre_family("deepseek-v3")->matches_cover_text);
}

}  // namespace
}  // namespace mcmoe::tokenizer::detail
