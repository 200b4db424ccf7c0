// GGUF tokenizer.ggml.* keys ⇄ VocabData, with llama.cpp's defaults and key names.
#include "core/error.h"
#include "format/gguf.h"
#include "tokenizer/internal.h"
#include "tokenizer/pretokenize.h"

namespace mcmoe::tokenizer::detail {

namespace {

using format::GgufArray;
using format::GgufType;
using format::GgufValue;

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kAddEos = "tokenizer.ggml.add_eos_token";
constexpr const char* kAddSpace = "tokenizer.ggml.add_space_prefix";
constexpr const char* kRemoveWs = "tokenizer.ggml.remove_extra_whitespaces";
constexpr const char* kCharsmap = "tokenizer.ggml.precompiled_charsmap";
// Only where a vocabulary's ignore_merges differs from its family's llama.cpp default
// (gpt-oss's tokenizer.json sets it; llama.cpp's gpt-4o type does not), so that a GGUF
// written here encodes like its source. llama.cpp does not read it.
constexpr const char* kIgnoreMerges = "mcmoe.tokenizer.ignore_merges";

const GgufArray& typed_array(const format::GgufFile& g, const char* key,
                             std::initializer_list<GgufType> allowed) {
  const GgufArray& a = g.get_array(key);
  for (GgufType t : allowed) {
    if (a.elem_type == t) return a;
  }
  std::string want;
  for (GgufType t : allowed) want += std::string(want.empty() ? "" : " or ") + format::gguf_type_name(t);
  fail("{}: key '{}': expected an array of {}, found an array of {}", g.path(), key, want,
       format::gguf_type_name(a.elem_type));
}

int32_t read_id(const format::GgufFile& g, const char* key, int32_t def, size_t n_tokens) {
  if (!g.has(key)) return def >= 0 && static_cast<size_t>(def) < n_tokens ? def : -1;
  const int64_t id = g.get_int(key);
  if (id < 0 || id >= static_cast<int64_t>(n_tokens)) {
    fail("{}: {} = {} is out of range: the vocabulary has {} tokens", g.path(), key, id, n_tokens);
  }
  return static_cast<int32_t>(id);
}

}  // namespace

VocabData read_gguf_vocab(const format::GgufFile& g) {
  VocabData v;
  v.source = g.path();
  v.model = g.get_string(kModel);
  if (v.model != "llama" && v.model != "gpt2") {
    fail("{}: {} = '{}' is not supported (expected 'llama' or 'gpt2')", g.path(), kModel, v.model);
  }
  v.pre = g.get_string(kPre, "default");

  const GgufArray& toks = typed_array(g, kTokens, {GgufType::STRING});
  const size_t n = toks.items.size();
  v.tokens.reserve(n);
  for (const GgufValue& t : toks.items) v.tokens.push_back(std::get<std::string>(t.v));

  if (g.has(kScores)) {
    const GgufArray& a = typed_array(g, kScores, {GgufType::F32, GgufType::I32});
    v.scores.reserve(a.items.size());
    for (const GgufValue& s : a.items) {
      v.scores.push_back(a.elem_type == GgufType::F32 ? static_cast<float>(std::get<double>(s.v))
                                                      : static_cast<float>(std::get<int64_t>(s.v)));
    }
  } else {
    v.scores.assign(n, 0.0f);
  }
  if (g.has(kTypes)) {
    const GgufArray& a = typed_array(g, kTypes, {GgufType::I32});
    v.types.reserve(a.items.size());
    for (size_t i = 0; i < a.items.size(); ++i) {
      const int64_t x = std::get<int64_t>(a.items[i].v);
      // llama.cpp's llama_token_type: 0 (undefined) .. 6 (byte).
      if (x < 0 || x > 6)
        fail("{}: {} entry {} is {}; expected a token type 0..6", g.path(), kTypes, i, x);
      v.types.push_back(static_cast<TokenType>(x));
    }
  } else {
    v.types.assign(n, TokenType::Normal);
  }

  if (v.model == "gpt2") {
    if (!g.has(kMerges)) fail("{}: missing metadata key '{}' (required for tokenizer model 'gpt2')", g.path(), kMerges);
    const GgufArray& a = typed_array(g, kMerges, {GgufType::STRING});
    v.merges.reserve(a.items.size());
    for (const GgufValue& m : a.items) v.merges.push_back(std::get<std::string>(m.v));
  }

  // llama.cpp's defaults when a key is absent: SPM 1/2/0 (BOS/EOS/UNK); for BPE, add_bos
  // and ignore_merges as the family sets them. llama.cpp's BPE default of id 11 for BOS
  // and EOS is not copied: a vocabulary without those keys has none, and add_bos without a
  // BOS id is then reported by validate_vocab instead of prepending an arbitrary token.
  const bool spm = v.model == "llama";
  const PreFamily* family = spm ? nullptr : find_pre_family(v.pre);  // unknown: make_bpe_tokenizer says so
  v.bos_id = read_id(g, kBos, spm ? 1 : -1, n);
  v.eos_id = read_id(g, kEos, spm ? 2 : -1, n);
  v.unk_id = read_id(g, kUnk, spm ? 0 : -1, n);
  v.pad_id = read_id(g, kPad, -1, n);
  v.add_bos = g.get_bool(kAddBos, spm || (family && family->add_bos));
  v.ignore_merges = g.get_bool(kIgnoreMerges, family && family->ignore_merges);
  v.add_eos = g.get_bool(kAddEos, false);
  v.add_space_prefix = g.get_bool(kAddSpace, spm);

  if (spm && (g.has(kRemoveWs) || g.has(kCharsmap))) {
    v.sp_exact = true;
    v.remove_extra_whitespaces = g.get_bool(kRemoveWs, false);
    if (g.has(kCharsmap)) {
      const GgufArray& a = typed_array(g, kCharsmap, {GgufType::U8, GgufType::I8});
      v.precompiled_charsmap.reserve(a.items.size());
      for (const GgufValue& b : a.items) {
        v.precompiled_charsmap += a.elem_type == GgufType::U8
                                      ? static_cast<char>(std::get<uint64_t>(b.v))
                                      : static_cast<char>(std::get<int64_t>(b.v));
      }
    }
  }

  validate_vocab(v, {kTokens, kScores, kTypes, kBos, kEos, kUnk, kPad, kAddBos, kAddEos});
  return v;
}

void write_gguf_vocab(const VocabData& v, format::GgufWriter& w) {
  const auto strings = [](const std::vector<std::string>& xs) {
    std::vector<GgufValue> items;
    items.reserve(xs.size());
    for (const auto& x : xs) items.push_back(GgufValue::str(x));
    return GgufValue::array(GgufType::STRING, std::move(items));
  };
  w.set(kModel, GgufValue::str(v.model));
  w.set(kPre, GgufValue::str(v.pre.empty() ? "default" : v.pre));
  w.set(kTokens, strings(v.tokens));
  if (v.model == "llama") {
    std::vector<GgufValue> scores;
    scores.reserve(v.scores.size());
    for (float s : v.scores) scores.push_back(GgufValue::f32(s));
    w.set(kScores, GgufValue::array(GgufType::F32, std::move(scores)));
  }
  std::vector<GgufValue> types;
  types.reserve(v.types.size());
  for (TokenType t : v.types) types.push_back(GgufValue::i32(static_cast<int32_t>(t)));
  w.set(kTypes, GgufValue::array(GgufType::I32, std::move(types)));
  if (v.model == "gpt2") {
    w.set(kMerges, strings(v.merges));
    const PreFamily* family = find_pre_family(v.pre);
    if (!family || family->ignore_merges != v.ignore_merges) w.set(kIgnoreMerges, GgufValue::boolean(v.ignore_merges));
  }

  const auto id = [&](const char* key, int32_t x) {
    if (x >= 0) w.set(key, GgufValue::u32(static_cast<uint32_t>(x)));
  };
  id(kBos, v.bos_id);
  id(kEos, v.eos_id);
  id(kUnk, v.unk_id);
  id(kPad, v.pad_id);
  w.set(kAddBos, GgufValue::boolean(v.add_bos));
  w.set(kAddEos, GgufValue::boolean(v.add_eos));
  w.set(kAddSpace, GgufValue::boolean(v.add_space_prefix));
  if (v.model == "llama" && v.sp_exact) {
    // Their presence is what tells a reader to encode the SentencePiece way.
    w.set(kRemoveWs, GgufValue::boolean(v.remove_extra_whitespaces));
    if (!v.precompiled_charsmap.empty()) {
      std::vector<GgufValue> bytes;
      bytes.reserve(v.precompiled_charsmap.size());
      for (char c : v.precompiled_charsmap) {
        bytes.push_back({GgufType::U8, uint64_t{static_cast<uint8_t>(c)}});
      }
      w.set(kCharsmap, GgufValue::array(GgufType::U8, std::move(bytes)));
    }
  }
}

}  // namespace mcmoe::tokenizer::detail
