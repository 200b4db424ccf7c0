#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "cli/common.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <filesystem>

namespace mcmoe::cli {

int cmd_tokenize(const Argv& argv) {
  static const CommandSpec spec{
      "tokenize",
      "token ids and pieces of a text",
      {{"-m", "MODEL", "", "model or vocabulary: a GGUF file or a Hugging Face directory"},
       {"-p", "TEXT", "", "the text (or -f)"},
       {"-f", "FILE", "", "read the text from a file"}}};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  if (a.has("-p") == a.has("-f")) fail("tokenize: give exactly one of -p TEXT or -f FILE");
  const std::string text = a.has("-f") ? read_text_file(a.str("-f", "")) : a.str("-p", "");
  // Only the tokenizer is needed: vocabulary-only GGUFs (no weights) must work too.
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (std::filesystem::is_directory(path)) {
    tok = tokenizer::Tokenizer::from_hf_dir(path);
  } else {
    format::GgufFile f(path);
    tok = tokenizer::Tokenizer::from_gguf(f);
  }
  const std::vector<int32_t> ids = tok->encode(text);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace mcmoe::cli
