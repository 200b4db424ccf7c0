// llama.cpp's tokenizer test vectors (tests/test-tokenizer-0 format): for every NAME.gguf
// with NAME.gguf.inp / NAME.gguf.out, every input must encode to the expected ids
// (add_special = false, parse_special = false). The vectors are looked for in
// ../shared/peer-tests/llama.cpp-tokenizer, in tests/data/tokenizer/llama.cpp (see the
// README there) and, when MCMOE_LLAMA_CPP_MODELS names a llama.cpp checkout's models/
// folder, there too. Vectors whose vocabulary file is absent are listed; their texts are
// checked by test_families.cpp (pre-tokenizer splits, and ids through tokenizer.json).
// The same vocabularies also check that write_gguf_metadata → from_gguf, and (for the
// byte-level ones) a tokenizer.json written from them, encode identically.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "tokenizer/internal.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

struct PeerCase {
  std::string name;  // NAME.gguf
  fs::path gguf;
  std::string model;  // tokenizer.ggml.model
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

std::vector<fs::path> vector_dirs() {
  std::vector<fs::path> dirs = {shared_dir() / "peer-tests" / "llama.cpp-tokenizer", data_dir() / "llama.cpp"};
  if (const char* env = std::getenv("MCMOE_LLAMA_CPP_MODELS"); env && *env) dirs.emplace_back(env);
  return dirs;
}

// Every NAME.gguf.inp with its .out and NAME.gguf, first directory first (a name found
// twice is taken once). Vectors without their vocabulary are printed and left out.
std::vector<PeerCase> peer_cases() {
  std::vector<PeerCase> out;
  for (const fs::path& dir : vector_dirs()) {
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> inputs;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().filename().string().ends_with(".gguf.inp")) inputs.push_back(e.path());
    }
    std::sort(inputs.begin(), inputs.end());
    for (const fs::path& inp : inputs) {
      const std::string file = inp.filename().string();
      PeerCase c;
      c.name = file.substr(0, file.size() - 4);
      if (std::any_of(out.begin(), out.end(), [&](const PeerCase& o) { return o.name == c.name; })) continue;
      c.gguf = dir / c.name;
      if (!fs::exists(c.gguf) || !fs::exists(dir / (c.name + ".out"))) {
        std::printf("[ vocab    ] %-32s no vocabulary file in %s\n", c.name.c_str(), dir.string().c_str());
        continue;
      }
      c.inputs = split_inputs(slurp(inp));
      c.expected = read_outputs(dir / (c.name + ".out"));
      c.model = format::GgufFile(c.gguf.string()).get_string("tokenizer.ggml.model", "");
      out.push_back(std::move(c));
    }
  }
  std::sort(out.begin(), out.end(), [](const PeerCase& a, const PeerCase& b) { return a.name < b.name; });
  return out;
}

// The library implements llama.cpp's "llama" (SPM) and "gpt2" (byte-level BPE) vocabulary
// types; a vocabulary of another type (bert, t5, rwkv, ...) is reported and skipped.
bool supported(const PeerCase& c) {
  if (c.model == "llama" || c.model == "gpt2") return true;
  std::printf("[ vocab    ] %-32s SKIPPED: tokenizer.ggml.model '%s' is not an SPM or byte-level BPE vocabulary\n",
              c.name.c_str(), c.model.c_str());
  return false;
}

// Encodes every input and reports "NAME: passed/total".
size_t check_vectors(const Tokenizer& tok, const PeerCase& c, const char* how) {
  size_t passed = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const std::vector<int32_t> got = tok.encode(c.inputs[i]);
    if (got == c.expected[i]) {
      ++passed;
    } else {
      ADD_FAILURE() << c.name << " (" << how << ") input " << i << " '" << c.inputs[i]
                    << "'\n  expected: " << show(c.expected[i]) << "\n  got:      " << show(got);
    }
  }
  std::printf("[ vocab    ] %-32s %-18s %zu/%zu passed\n", c.name.c_str(), how, passed, c.inputs.size());
  return passed;
}

TEST(TokenizerPeerVocab, LlamaCppVectors) {
  const auto cases = peer_cases();
  // tests/data/tokenizer/llama.cpp ships this one, so the test always has a vocabulary.
  EXPECT_TRUE(std::any_of(cases.begin(), cases.end(),
                          [](const PeerCase& c) { return c.name == "ggml-vocab-deepseek-coder.gguf"; }));
  for (const PeerCase& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.inputs.size(), c.expected.size()) << "inputs and expected outputs differ in number";
    ASSERT_FALSE(c.inputs.empty());
    if (!supported(c)) continue;
    format::GgufFile gguf(c.gguf.string());
    const auto tok = Tokenizer::from_gguf(gguf);
    EXPECT_EQ(check_vectors(*tok, c, "from_gguf"), c.inputs.size());
  }
}

TEST(TokenizerPeerVocab, GgufMetadataRoundTrip) {
  const auto cases = peer_cases();
  if (cases.empty()) GTEST_SKIP() << "no llama.cpp vocabulary with test vectors was found";
  ScratchDir tmp;
  for (const PeerCase& c : cases) {
    SCOPED_TRACE(c.name);
    if (!supported(c)) continue;
    format::GgufFile gguf(c.gguf.string());
    const auto tok = Tokenizer::from_gguf(gguf);
    format::GgufWriter w;
    tok->write_gguf_metadata(w);
    const fs::path out = tmp / c.name;
    w.write(out.string());
    format::GgufFile back_file(out.string());
    const auto back = Tokenizer::from_gguf(back_file);
    EXPECT_EQ(back->n_vocab(), tok->n_vocab());
    EXPECT_EQ(back->bos_id(), tok->bos_id());
    EXPECT_EQ(back->eos_id(), tok->eos_id());
    EXPECT_EQ(back->add_bos(), tok->add_bos());
    EXPECT_EQ(check_vectors(*back, c, "gguf round trip"), c.inputs.size());
  }
}

// PCRE2 patterns spell non-ASCII characters as \x{HEX}; tokenizer.json has them literally.
std::string literal_chars(const std::string& re) {
  std::string out;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re.compare(i, 3, "\\x{") == 0) {
      const size_t end = re.find('}', i);
      tokenizer::detail::utf8_append(out, static_cast<uint32_t>(std::stoul(re.substr(i + 3, end - i - 3), nullptr, 16)));
      i = end;
    } else {
      out += re[i];
    }
  }
  return out;
}

// A Hugging Face tokenizer.json for a byte-level vocabulary, laid out as the real ones of
// its family are (Split steps, Digits, ByteLevel), merges in the ["a", "b"] form.
nlohmann::json hf_json_for(const Tokenizer& tok) {
  using nlohmann::json;
  const VocabData& v = tok.vocab();
  json vocab = json::object();
  json added = json::array();
  for (int32_t i = 0; i < tok.n_vocab(); ++i) {
    const TokenType t = v.types[i];
    if (t == TokenType::Control || t == TokenType::UserDefined) {
      added.push_back({{"id", i}, {"content", v.tokens[i]}, {"special", t == TokenType::Control}});
    }
    vocab[v.tokens[i]] = i;
  }
  json merges = json::array();
  for (const std::string& m : v.merges) {
    const size_t sp = m.find(' ', 1);
    merges.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
  }
  const auto split = [](const std::string& re) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", literal_chars(re)}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  json pre;
  if (v.pre == "gpt-2") {
    pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  } else {
    const detail::PreFamily* fam = detail::find_pre_family(v.pre);
    EXPECT_NE(fam, nullptr);
    json steps = json::array();
    for (const std::string& re : fam->regexes) {
      if (re == R"(\p{N}+)" || re == R"(\p{N})") {
        steps.push_back({{"type", "Digits"}, {"individual_digits", re == R"(\p{N})"}});
      } else {
        steps.push_back(split(re));
      }
    }
    steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
    pre = {{"type", "Sequence"}, {"pretokenizers", steps}};
  }
  return json{{"version", "1.0"},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", pre},
              {"model",
               {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", merges},
                {"byte_fallback", false},
                {"ignore_merges", v.ignore_merges}}}};
}

TEST(TokenizerPeerVocab, HfTokenizerJsonFromByteLevelVocab) {
  const auto cases = peer_cases();
  if (cases.empty()) GTEST_SKIP() << "no llama.cpp vocabulary with test vectors was found";
  for (const PeerCase& c : cases) {
    if (c.model != "gpt2") continue;
    format::GgufFile gguf(c.gguf.string());
    const auto tok = Tokenizer::from_gguf(gguf);
    SCOPED_TRACE(c.name);
    ScratchDir dir;
    spit(dir / "tokenizer.json", hf_json_for(*tok).dump());
    spit(dir / "config.json", nlohmann::json{{"bos_token_id", tok->bos_id()}, {"eos_token_id", tok->eos_id()}}.dump());
    const auto hf = Tokenizer::from_hf_dir(dir.path().string());
    // A tokenizer.json names no type: it resolves to the canonical name of the GGUF's.
    EXPECT_EQ(hf->vocab().pre, detail::find_pre_family(tok->vocab().pre)->name);
    EXPECT_EQ(hf->n_vocab(), tok->n_vocab());
    EXPECT_EQ(hf->eos_id(), tok->eos_id());
    EXPECT_EQ(check_vectors(*hf, c, "tokenizer.json"), c.inputs.size());
  }
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
