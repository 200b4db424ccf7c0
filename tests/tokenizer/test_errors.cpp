// Malformed inputs fail with one-line mcmoe::Error messages naming the file and the key
// (or field) and what was expected versus found: truncated / foreign protobuf, broken
// tokenizer.json, inconsistent or out-of-range GGUF metadata, bad config files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "format/gguf.h"
#include "synthetic_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mcmoe::tokenizer::test {
namespace {

using format::GgufType;
using format::GgufValue;

// ---- SentencePiece protobuf ---------------------------------------------------------

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string field_varint(uint32_t field, uint64_t v) { return varint(field << 3 | 0) + varint(v); }
std::string field_bytes(uint32_t field, const std::string& b) { return varint(field << 3 | 2) + varint(b.size()) + b; }
std::string piece(const std::string& text, float score, int type) {
  std::string f(4, '\0');
  std::memcpy(f.data(), &score, 4);
  return field_bytes(1, field_bytes(1, text) + varint(2 << 3 | 5) + f + field_varint(3, type));
}

TEST(TokenizerErrors, TruncatedSentencePieceModel) {
  const std::string model = slurp(data_dir() / "mixtral-tiny" / "tokenizer.model");
  ASSERT_GT(model.size(), 10000u);
  ScratchDir dir;
  spit(dir / "tokenizer.model", model.substr(0, 5000));
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "truncated protobuf"});
  spit(dir / "tokenizer.model", model.substr(0, model.size() - 3));
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "truncated protobuf", "bytes"});
  spit(dir / "tokenizer.model", std::string("\x0f\xff\xff", 3));  // field 1 with wire type 7
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "wire type"});
  spit(dir / "tokenizer.model", "");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "empty"});
}

TEST(TokenizerErrors, UnsupportedSentencePieceModels) {
  ScratchDir dir;
  const std::string pieces = piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("a", -1, 1);
  spit(dir / "tokenizer.model", pieces + field_bytes(2, field_varint(3, 1)));  // model_type = UNIGRAM
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "model_type = 1", "UNIGRAM"});
  spit(dir / "tokenizer.model", pieces + field_bytes(2, field_varint(3, 2) + field_varint(35, 1)));  // no byte pieces
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "byte_fallback", "256"});
  spit(dir / "tokenizer.model", pieces + field_bytes(2, field_varint(3, 2) + field_varint(41, 9)));  // bos_id = 9
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.model", "bos_id = 9", "out of range"});
  // A well-formed minimal BPE model loads, with the defaults of sentencepiece_model.proto.
  spit(dir / "tokenizer.model", pieces + field_bytes(2, field_varint(3, 2)));
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_EQ(tok->n_vocab(), 4);
  // As python sentencepiece on the same bytes: "▁" is unknown, there is no byte fallback,
  // and a run of unknown pieces is one <unk>.
  EXPECT_EQ(tok->encode("a a"), (std::vector<int32_t>{0, 3, 0, 3}));
  EXPECT_EQ(tok->encode("bb cc a"), (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(tok->encode("xy"), (std::vector<int32_t>{0}));
  EXPECT_EQ(tok->encode("  "), (std::vector<int32_t>{}));
}

// ---- tokenizer.json / config files ----------------------------------------------------

TEST(TokenizerErrors, MalformedTokenizerJson) {
  ScratchDir dir;
  spit(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0,)");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "malformed JSON"});
  spit(dir / "tokenizer.json", R"({"model": {"type": "BPE", "merges": []}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "model.vocab", "missing"});
  spit(dir / "tokenizer.json", R"({"version": "1.0"})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "'model'"});
  spit(dir / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "model.type", "WordPiece"});
  spit(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "model.vocab['a']"});
  spit(dir / "tokenizer.json",
       R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [7]}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "model.merges[0]"});
  spit(dir / "tokenizer.json",
       R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"},)"
       R"( "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer.json", "ByteLevel"});
  // One id near 2^31 sized the token table to 64 GB before anything else was checked.
  spit(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 2147483646}}})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); },
               {"tokenizer.json", "model.vocab['a'] = 2147483646", "0 to 16777215"});
  // A few tokens with an id of a million: a million "[PADi]" holes, seconds under ASan
  // (fuzzing). Specials at 200,000 over a tiny vocabulary still load (gpt-oss-like tests).
  spit(dir / "tokenizer.json",
       R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},)"
       R"( "added_tokens": [{"id": 1111113, "content": "<x>", "special": true}]})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); },
               {"tokenizer.json", "ids reach 1111113 but only 3 distinct ids are listed",
                "1111111 unused ids"});
  spit(
      dir / "tokenizer.json",
      R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1,)"
      R"( "ab": 2}, "merges": ["a b"]}, "added_tokens": [{"id": 200000, "content": "<x>", "special": true}]})");
  EXPECT_EQ(Tokenizer::from_hf_dir(dir.path().string())->n_vocab(), 200001);
}

TEST(TokenizerErrors, BadConfigFiles) {
  ScratchDir dir;
  spit(dir / "tokenizer.model", slurp(data_dir() / "mixtral-tiny" / "tokenizer.model"));
  spit(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": 5000})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"config.json", "eos_token_id = 5000", "out of range"});
  spit(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": [2, 7]})");
  EXPECT_EQ(Tokenizer::from_hf_dir(dir.path().string())->eos_id(), 2) << "the first of a list of EOS ids";
  spit(dir / "tokenizer_config.json", R"({"bos_token": "<nope>"})");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer_config.json", "bos_token", "<nope>"});
  spit(dir / "tokenizer_config.json", R"({"add_bos_token": false, "bos_token": {"content": "</s>"}})");
  const auto tok = Tokenizer::from_hf_dir(dir.path().string());
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 2);
  spit(dir / "tokenizer_config.json", R"({"add_bos_token": tru)");
  expect_error([&] { Tokenizer::from_hf_dir(dir.path().string()); }, {"tokenizer_config.json", "malformed JSON"});
  expect_error([&] { Tokenizer::from_hf_dir((dir / "absent").string()); }, {"absent", "not a directory"});
  ScratchDir empty;
  expect_error([&] { Tokenizer::from_hf_dir(empty.path().string()); }, {"neither tokenizer.model nor tokenizer.json"});
}

// ---- GGUF metadata --------------------------------------------------------------------

// GGUF metadata of the synthetic SentencePiece vocabulary, then `edit` applied.
std::string write_gguf(const ScratchDir& dir, const std::function<void(format::GgufWriter&)>& edit) {
  const auto tok = Tokenizer::from_vocab(synthetic_spm());
  format::GgufWriter w;
  tok->write_gguf_metadata(w);
  edit(w);
  const std::string path = (dir / "vocab.gguf").string();
  w.write(path);
  return path;
}

std::vector<GgufValue> strings(std::initializer_list<const char*> xs) {
  std::vector<GgufValue> out;
  for (const char* x : xs) out.push_back(GgufValue::str(x));
  return out;
}

TEST(TokenizerErrors, GgufArraysOfDifferentLengths) {
  ScratchDir dir;
  const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
    w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::F32, {GgufValue::f32(0), GgufValue::f32(-1)}));
  });
  format::GgufFile g(path);
  expect_error([&] { Tokenizer::from_gguf(g); },
               {path, "tokenizer.ggml.scores", "2 entries", "tokenizer.ggml.tokens", "has 277"});
  const std::string path2 = write_gguf(dir, [](format::GgufWriter& w) {
    w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, {GgufValue::i32(1)}));
  });
  format::GgufFile g2(path2);
  expect_error([&] { Tokenizer::from_gguf(g2); }, {"tokenizer.ggml.token_type", "1 entries"});
}

TEST(TokenizerErrors, GgufSpecialIdOutOfRange) {
  ScratchDir dir;
  const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
    w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(100000));
  });
  format::GgufFile g(path);
  expect_error([&] { Tokenizer::from_gguf(g); }, {path, "tokenizer.ggml.bos_token_id = 100000", "out of range", "277 tokens"});
  const std::string path2 = write_gguf(dir, [](format::GgufWriter& w) {
    w.set("tokenizer.ggml.eos_token_id", GgufValue::i32(-5));
  });
  format::GgufFile g2(path2);
  expect_error([&] { Tokenizer::from_gguf(g2); }, {"tokenizer.ggml.eos_token_id = -5"});
}

// A GGUF whose token texts (and types, when given) are those of `v`.
std::string write_gguf_tokens(const ScratchDir& dir, const VocabData& v,
                              const std::vector<int32_t>& types = {}) {
  return write_gguf(dir, [&](format::GgufWriter& w) {
    std::vector<GgufValue> toks;
    for (const std::string& t : v.tokens) toks.push_back(GgufValue::str(t));
    w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, std::move(toks)));
    if (!types.empty()) {
      std::vector<GgufValue> ts;
      for (int32_t t : types) ts.push_back(GgufValue::i32(t));
      w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::move(ts)));
    }
  });
}

TEST(TokenizerErrors, GgufByteTokensMustNameOneByteEach) {
  ScratchDir dir;
  const VocabData base = synthetic_spm();
  int32_t first_byte = -1;
  for (size_t i = 0; i < base.types.size() && first_byte < 0; ++i) {
    if (base.types[i] == TokenType::Byte) first_byte = static_cast<int32_t>(i);
  }
  ASSERT_GE(first_byte, 0);
  {
    VocabData v = base;
    v.tokens[first_byte + 5] = "<0xZZ>";
    const std::string path = write_gguf_tokens(dir, v);
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); },
                 {path, "token " + std::to_string(first_byte + 5), "'<0xZZ>'", "BYTE", "<0xHH>",
                  "tokenizer.ggml.token_type"});
  }
  {
    VocabData v = base;
    v.tokens[first_byte + 5] = "A";  // a byte token spelled as its character
    const std::string path = write_gguf_tokens(dir, v);
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"'A'", "BYTE"});
  }
  {
    VocabData v = base;  // byte 0x0B twice: <0x0B> and <0x0b>
    ASSERT_EQ(v.tokens[first_byte + 0x0a], "<0x0A>");
    v.tokens[first_byte + 0x0a] = "<0x0b>";
    const std::string path = write_gguf_tokens(dir, v);
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"'<0x0B>'", "'<0x0b>'", "byte 0x0B"});
  }
}

TEST(TokenizerErrors, GgufTokenTypeOutOfRange) {
  ScratchDir dir;
  const VocabData v = synthetic_spm();
  std::vector<int32_t> types(v.types.size());
  for (size_t i = 0; i < types.size(); ++i) types[i] = static_cast<int32_t>(v.types[i]);
  types[7] = 9;
  const std::string path = write_gguf_tokens(dir, v, types);
  format::GgufFile g(path);
  expect_error([&] { Tokenizer::from_gguf(g); },
               {path, "tokenizer.ggml.token_type entry 7 is 9", "0..6"});
}

TEST(TokenizerErrors, GgufWrongOrMissingKeys) {
  ScratchDir dir;
  {
    const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
      w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::I32, {GgufValue::i32(1)}));
    });
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {path, "tokenizer.ggml.tokens", "array of string", "i32"});
  }
  {
    const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
      w.set("tokenizer.ggml.model", GgufValue::str("t5"));
    });
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"tokenizer.ggml.model", "'t5'", "not supported"});
  }
  {
    const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
      w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
      w.set("tokenizer.ggml.merges", GgufValue::array(GgufType::STRING, strings({"a b"})));
      w.set("tokenizer.ggml.pre", GgufValue::str("no-such-family"));
    });
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"no-such-family", "tokenizer.ggml.pre", "not supported"});
  }
  {
    const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
      w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    });
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"tokenizer.ggml.merges", "gpt2"});
  }
  {
    format::GgufWriter w;
    w.set("general.architecture", GgufValue::str("llama"));
    const std::string path = (dir / "novocab.gguf").string();
    w.write(path);
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {path, "tokenizer.ggml.model"});
  }
  {
    const std::string path = write_gguf(dir, [](format::GgufWriter& w) {
      w.set("tokenizer.ggml.precompiled_charsmap", GgufValue::array(GgufType::U8, {GgufValue{GgufType::U8, uint64_t{1}}}));
    });
    format::GgufFile g(path);
    expect_error([&] { Tokenizer::from_gguf(g); }, {"precompiled_charsmap", "too short"});
  }
}

TEST(TokenizerErrors, BadIdsAndDuplicates) {
  const auto tok = Tokenizer::from_vocab(synthetic_spm());
  expect_error([&] { tok->token_to_piece(tok->n_vocab()); }, {"token id 277", "out of range"});
  expect_error([&] { tok->decode(std::vector<int32_t>{-1}); }, {"token id -1"});
  VocabData v = synthetic_spm();
  v.tokens[5] = v.tokens[4];
  expect_error([&] { Tokenizer::from_vocab(v); }, {"synthetic-spm", "duplicate token", "ids 4 and 5"});
  VocabData w = synthetic_spm();
  w.add_eos = true;
  w.eos_id = -1;
  expect_error([&] { Tokenizer::from_vocab(w); }, {"add_eos", "no EOS"});
}

TEST(TokenizerErrors, MergesMustNameTokens) {
  // Each merge's two parts and its result must be tokens (Hugging Face refuses them
  // otherwise; llama.cpp would keep a merge that can never apply, silently).
  {
    VocabData v = synthetic_gpt2();
    v.merges.push_back("q z");  // the result "qz" is not a token
    expect_error([&] { Tokenizer::from_vocab(v); },
                 {"synthetic-gpt2", "merge 9", "'q z'", "result 'qz'"});
  }
  {
    VocabData v = synthetic_gpt2();
    v.merges.insert(v.merges.begin(), "hel lo");  // neither part is a token
    expect_error([&] { Tokenizer::from_vocab(v); }, {"merge 0", "'hel lo'", "left part 'hel'"});
  }
  {
    VocabData v = synthetic_gpt2();
    v.merges.push_back("h ello");
    expect_error([&] { Tokenizer::from_vocab(v); }, {"merge 9", "right part 'ello'"});
  }
}

}  // namespace
}  // namespace mcmoe::tokenizer::test
