// llama.cpp's tokenizer test vectors (tests/test-tokenizer-0 format): for every NAME.gguf
// with NAME.gguf.inp / NAME.gguf.out in ../shared/peer-tests/llama.cpp-tokenizer, every
// input must encode to the expected ids (add_special = false, parse_special = false).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::tokenizer {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Inputs are separated by "\n__ggml_vocab_test__\n" (the newline before the marker
// belongs to the separator); the file ends with a separator, after which nothing counts.
std::vector<std::string> split_inputs(const std::string& raw) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      out.push_back(raw.substr(pos));
      break;
    }
    out.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> read_outputs(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<int32_t>> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int64_t x; ls >> x;) ids.push_back(static_cast<int32_t>(x));
    out.push_back(std::move(ids));
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

fs::path peer_dir() { return fs::path(MCMOE_SOURCE_DIR) / ".." / "shared" / "peer-tests" / "llama.cpp-tokenizer"; }

TEST(TokenizerPeerVocab, LlamaCppVectors) {
  const fs::path dir = peer_dir();
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is absent";
  std::vector<fs::path> inputs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 9 && name.ends_with(".gguf.inp")) inputs.push_back(e.path());
  }
  std::sort(inputs.begin(), inputs.end());
  ASSERT_FALSE(inputs.empty()) << "no *.gguf.inp in " << dir;
  for (const fs::path& inp : inputs) {
    const std::string base = inp.string().substr(0, inp.string().size() - 4);  // NAME.gguf
    SCOPED_TRACE(base);
    const std::vector<std::string> texts = split_inputs(slurp(inp));
    const auto expected = read_outputs(base + ".out");
    ASSERT_EQ(texts.size(), expected.size()) << "inputs and expected outputs differ in number";
    format::GgufFile gguf(base);
    const auto tok = Tokenizer::from_gguf(gguf);
    size_t passed = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<int32_t> got = tok->encode(texts[i]);
      if (got == expected[i]) {
        ++passed;
      } else {
        ADD_FAILURE() << "input " << i << " '" << texts[i] << "'\n  expected: " << show(expected[i])
                      << "\n  got:      " << show(got);
      }
    }
    std::printf("[ vocab    ] %s: %zu/%zu passed\n", fs::path(base).filename().c_str(), passed, texts.size());
    EXPECT_EQ(passed, texts.size());
  }
}

}  // namespace
}  // namespace mcmoe::tokenizer
