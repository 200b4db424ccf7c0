#pragma once
// The pre_tokenizer of a Hugging Face tokenizer.json, read into what the encoders know:
// a SentencePiece-style Metaspace, or a byte-level BPE whose splits are those of one of
// llama.cpp's pre-tokenizer types. A byte-level pre_tokenizer that splits like no known
// type is an error that names its steps: encoding it with another type's regexes would
// be a silent fallback.
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tokenizer/pretokenize.h"

namespace mcmoe::tokenizer::detail {

struct HfPreTokenizer {
  bool metaspace = false;                // Metaspace: SentencePiece-style
  bool metaspace_prefix = true;          // Metaspace prepends '▁' (prepend_scheme != "never")
  bool byte_level = false;               // a ByteLevel step: GPT-2 byte-level BPE
  bool byte_level_prefix_space = false;  // ByteLevel(add_prefix_space = true)
  const PreFamily* family = nullptr;     // byte-level only: the llama.cpp type it splits like
};

// `pre_tokenizer` may be null (no pre-tokenizer). `ignore_merges` (the model's flag) picks
// among types that share their regexes. `path` names the file in errors.
HfPreTokenizer read_hf_pre_tokenizer(const nlohmann::json* pre_tokenizer, bool ignore_merges,
                                     const std::string& path);

}  // namespace mcmoe::tokenizer::detail
