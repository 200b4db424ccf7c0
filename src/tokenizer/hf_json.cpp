// Hugging Face tokenizer.json (model.vocab, model.merges in both the "a b" and ["a", "b"]
// forms, added_tokens, normalizer / pre_tokenizer → family) and the tokenizer_config.json
// / config.json settings of a model directory (special tokens, add_bos/add_eos, size).
//
// A byte-level BPE (pre_tokenizer with ByteLevel) becomes a "gpt2" vocabulary whose
// family is the llama.cpp type its splits equal (hf_pre_tokenizer.cpp), with the file's
// own ignore_merges and ByteLevel add_prefix_space. Added tokens are control tokens when
// "special" (parsed only by encode_with_special), user-defined otherwise (always parsed,
// as Hugging Face does). A SentencePiece-
// style BPE (byte_fallback, Metaspace, or a normaliser replacing ' ' by U+2581) becomes a
// "llama" vocabulary with scores derived from the merge ranks (score = -rank of the first
// merge forming the token), which is how the SentencePiece trainer orders them too.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "tokenizer/hf_pre_tokenizer.h"
#include "tokenizer/internal.h"

namespace mcmoe::tokenizer::detail {

namespace {

using nlohmann::json;

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
// Score for tokens no merge forms: merging reaches them last, if ever.
constexpr float kUnmergedScore = -1e9f;

const json* member(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// A token given as "text" or as an AddedToken object {"content": "text", ...}.
std::string token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (const json* c = member(j, "content"); c && c->is_string()) return c->get<std::string>();
  return {};
}

// Whether the normaliser turns ' ' into U+2581 (SentencePiece-style), and whether it
// prepends U+2581.
void walk_normalizer(const json& n, const std::string& path, bool& escapes, bool& prepends, bool& other) {
  const std::string type = n.value("type", "");
  if (type == "Sequence") {
    if (const json* list = member(n, "normalizers"); list && list->is_array()) {
      for (const json& m : *list) walk_normalizer(m, path, escapes, prepends, other);
    }
  } else if (type == "Replace") {
    const json* pat = member(n, "pattern");
    if (pat && member(*pat, "String") && (*pat)["String"] == " " && n.value("content", "") == kSpaceSymbol) {
      escapes = true;
    } else {
      other = true;
    }
  } else if (type == "Prepend") {
    prepends = n.value("prepend", "") == kSpaceSymbol;
    other |= !prepends;
  } else if (type != "NFC") {  // NFC (Qwen2): ignored, as llama.cpp does
    other = true;
  }
}

}  // namespace

VocabData read_hf_tokenizer_json(const std::string& path) {
  const json j = read_json_file(path);
  try {
    VocabData v;
    v.source = path;
    const json* model = member(j, "model");
    if (!model || !model->is_object()) fail("{}: key 'model' is missing or not an object", path);
    const std::string mtype = model->value("type", "BPE");
    if (mtype != "BPE") fail("{}: model.type = '{}' is not supported (expected 'BPE')", path, mtype);
    const json* vocab = member(*model, "vocab");
    if (!vocab || !vocab->is_object()) fail("{}: key 'model.vocab' is missing or not an object", path);

    // Table size: the largest id among vocab and added tokens.
    int64_t max_id = -1;
    for (const auto& [tok, id] : vocab->items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocabSize) {
        fail("{}: model.vocab['{}'] = {} is not a valid token id (0 to {})", path, tok, id.dump(),
             kMaxVocabSize - 1);
      }
      max_id = std::max(max_id, id.get<int64_t>());
    }
    const json* added = member(j, "added_tokens");
    if (added && !added->is_array()) fail("{}: key 'added_tokens' is not an array", path);
    if (added) {
      for (size_t i = 0; i < added->size(); ++i) {
        const json& a = (*added)[i];
        if (!member(a, "id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
            a["id"].get<int64_t>() >= kMaxVocabSize || !member(a, "content") ||
            !a["content"].is_string()) {
          fail("{}: added_tokens[{}] lacks a valid 'id' or 'content'", path, i);
        }
        max_id = std::max(max_id, a["id"].get<int64_t>());
      }
    }
    if (max_id < 0) fail("{}: model.vocab is empty", path);
    // Holes in the id range become "[PADi]" tokens. A few KB listing 200 tokens with an id of
    // a million made a million of them (seconds under ASan, found by fuzzing); real files
    // leave few holes (gpt-oss's specials start at 200,000 over a 199,998-token vocabulary,
    // and small test vocabularies may put them there too), so holes beyond 4 per listed token
    // and beyond 2^18 in all are refused.
    // Added tokens usually repeat vocab ids: the distinct ids count.
    std::vector<int64_t> ids;
    ids.reserve(vocab->size() + (added ? added->size() : 0));
    for (const auto& [tok, id] : vocab->items()) ids.push_back(id.get<int64_t>());
    if (added) {
      for (const json& a : *added) ids.push_back(a["id"].get<int64_t>());
    }
    std::sort(ids.begin(), ids.end());
    const auto listed = static_cast<int64_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
    const int64_t holes = max_id + 1 - listed;
    if (holes > std::max<int64_t>(4 * listed, int64_t{1} << 18)) {
      fail(
          "{}: ids reach {} but only {} distinct ids are listed: {} unused ids, more than a "
          "vocabulary leaves (at most 4 per token or 262,144, whichever is larger)",
          path, max_id, listed, holes);
    }
    const auto n = static_cast<size_t>(max_id + 1);
    v.tokens.assign(n, {});
    v.types.assign(n, TokenType::Normal);
    for (const auto& [tok, id] : vocab->items()) {
      const auto i = id.get<size_t>();
      if (!v.tokens[i].empty()) fail("{}: model.vocab has two tokens with id {}: '{}' and '{}'", path, i, v.tokens[i], tok);
      v.tokens[i] = tok;
    }
    if (added) {
      for (const json& a : *added) {
        const auto i = a["id"].get<size_t>();
        v.tokens[i] = a["content"].get<std::string>();
        v.types[i] = a.value("special", false) ? TokenType::Control : TokenType::UserDefined;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (v.tokens[i].empty()) {  // a hole in the id range, as llama.cpp's converter fills it
        v.tokens[i] = fmt::format("[PAD{}]", i);
        v.types[i] = TokenType::Unused;
      }
    }

    if (const json* merges = member(*model, "merges")) {
      if (!merges->is_array()) fail("{}: key 'model.merges' is not an array", path);
      v.merges.reserve(merges->size());
      for (size_t i = 0; i < merges->size(); ++i) {
        const json& m = (*merges)[i];
        if (m.is_string()) {
          v.merges.push_back(m.get<std::string>());
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
          v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
        } else {
          fail("{}: model.merges[{}] is neither \"a b\" nor [\"a\", \"b\"]: {}", path, i, m.dump());
        }
      }
    }

    // Hugging Face's BPE options that llama.cpp's BPE has no counterpart for.
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (const json* x = member(*model, key); x && !(x->is_string() && x->get<std::string>().empty())) {
        fail("{}: model.{} = {} is not supported (expected none or \"\")", path, key, x->dump());
      }
    }
    if (const json* d = member(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0)) {
      fail("{}: model.dropout = {} is not supported (BPE dropout is for training)", path, d->dump());
    }
    const bool ignore_merges = model->value("ignore_merges", false);  // Hugging Face's default
    const HfPreTokenizer pre = read_hf_pre_tokenizer(member(j, "pre_tokenizer"), ignore_merges, path);
    bool escapes = false, prepends = false, other = false;
    if (const json* nz = member(j, "normalizer")) walk_normalizer(*nz, path, escapes, prepends, other);
    const bool byte_fallback = model->value("byte_fallback", false);
    const bool spm_style = byte_fallback || pre.metaspace || escapes;

    if (spm_style) {
      if (pre.byte_level) fail("{}: pre_tokenizer mixes ByteLevel with SentencePiece-style settings", path);
      if (other) fail("{}: normalizer is not supported (only Prepend '▁' and Replace ' ' → '▁')", path);
      v.model = "llama";
      v.pre = "default";
      v.add_space_prefix = pre.metaspace ? pre.metaspace_prefix : prepends;
      v.scores.assign(n, kUnmergedScore);
      std::unordered_map<std::string_view, int32_t> ids;
      for (size_t i = 0; i < n; ++i) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
      for (size_t r = 0; r < v.merges.size(); ++r) {
        const std::string& m = v.merges[r];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) continue;
        auto it = ids.find(m.substr(0, sp) + m.substr(sp + 1));
        if (it != ids.end() && v.scores[it->second] == kUnmergedScore) v.scores[it->second] = -static_cast<float>(r);
      }
      for (size_t i = 0; i < n; ++i) {
        const std::string& t = v.tokens[i];
        if (byte_fallback && t.size() == 6 && t.starts_with("<0x") && t.back() == '>') v.types[i] = TokenType::Byte;
      }
      v.merges.clear();
      if (const json* unk = member(*model, "unk_token"); unk && unk->is_string()) {
        auto it = ids.find(unk->get<std::string>());
        if (it == ids.end()) fail("{}: model.unk_token '{}' is not in the vocabulary", path, unk->get<std::string>());
        v.unk_id = it->second;
        v.types[v.unk_id] = TokenType::Unknown;
      }
      v.add_bos = true;  // LlamaTokenizer's default
    } else {
      if (!pre.byte_level) {
        fail("{}: pre_tokenizer has no ByteLevel step: only byte-level or SentencePiece-style BPE is supported", path);
      }
      if (other) fail("{}: normalizer is not supported for a byte-level BPE (only NFC is accepted)", path);
      if (v.merges.empty()) fail("{}: key 'model.merges' is missing or empty", path);
      v.model = "gpt2";
      v.pre = pre.family->name;
      v.scores.assign(n, 0.0f);
      v.add_bos = pre.family->add_bos;
      v.ignore_merges = ignore_merges;
      v.add_space_prefix = pre.byte_level_prefix_space;
    }

    // A post-processor that starts every sequence with a special token means BOS (Llama 3.1
    // nests its TemplateProcessing in a Sequence after ByteLevel).
    const json* pp = member(j, "post_processor");
    if (pp && pp->value("type", "") == "Sequence") {
      const json* list = member(*pp, "processors");
      pp = nullptr;
      for (size_t i = 0; list && list->is_array() && i < list->size(); ++i) {
        if ((*list)[i].value("type", "") == "TemplateProcessing") pp = &(*list)[i];
      }
    }
    if (pp && pp->value("type", "") == "TemplateProcessing") {
      if (const json* single = member(*pp, "single"); single && single->is_array() && !single->empty()) {
        if (const json* st = member((*single)[0], "SpecialToken")) {
          const std::string name = st->value("id", "");
          for (size_t i = 0; i < n; ++i) {
            if (v.tokens[i] == name) {
              v.bos_id = static_cast<int32_t>(i);
              v.add_bos = true;
              break;
            }
          }
        } else {
          v.add_bos = false;
        }
      }
    }
    return v;
  } catch (const json::exception& e) {
    fail("{}: unexpected JSON structure: {}", path, e.what());
  }
}

void apply_hf_config_files(const std::string& dir, VocabData& v) {
  namespace fs = std::filesystem;
  std::unordered_map<std::string_view, int32_t> ids;
  const auto lookup = [&](const std::string& text) -> int32_t {
    if (ids.empty()) {
      for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
    }
    auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };
  bool bos_set = false, eos_set = false;
  const std::string tc_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(tc_path)) {
    const json tc = read_json_file(tc_path);
    try {
      if (const json* b = member(tc, "add_bos_token")) v.add_bos = b->get<bool>();
      if (const json* e = member(tc, "add_eos_token")) v.add_eos = e->get<bool>();
      const auto special = [&](const char* key, int32_t& id, bool* set) {
        const json* t = member(tc, key);
        if (!t) return;
        const std::string text = token_content(*t);
        if (text.empty()) return;
        const int32_t found = lookup(text);
        if (found < 0) fail("{}: {} '{}' is not in the vocabulary", tc_path, key, text);
        id = found;
        if (set) *set = true;
      };
      special("bos_token", v.bos_id, &bos_set);
      special("eos_token", v.eos_id, &eos_set);
      special("unk_token", v.unk_id, nullptr);
      special("pad_token", v.pad_id, nullptr);
    } catch (const json::exception& e) {
      fail("{}: unexpected JSON structure: {}", tc_path, e.what());
    }
  }
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (fs::exists(cfg_path)) {
    const json cfg = read_json_file(cfg_path);
    try {
      const auto id_of = [&](const char* key, int32_t& id) {
        const json* x = member(cfg, key);
        if (!x) return;
        if (x->is_array() && !x->empty()) x = &(*x)[0];  // eos_token_id may be a list: the first is the EOS
        if (!x->is_number_integer()) fail("{}: {} = {} is not an integer", cfg_path, key, x->dump());
        const int64_t val = x->get<int64_t>();
        if (val < 0 || val >= static_cast<int64_t>(v.tokens.size())) {
          fail("{}: {} = {} is out of range: the tokenizer has {} tokens", cfg_path, key, val, v.tokens.size());
        }
        id = static_cast<int32_t>(val);
      };
      if (const json* vs = member(cfg, "vocab_size")) {
        if (!vs->is_number_integer() || vs->get<int64_t>() <= 0 ||
            vs->get<int64_t>() > kMaxVocabSize) {
          fail("{}: vocab_size = {} is not a valid size (1 to {})", cfg_path, vs->dump(),
               kMaxVocabSize);
        }
        // Cover the embedding rows: ids the model can produce must decode.
        for (auto i = static_cast<int64_t>(v.tokens.size()); i < vs->get<int64_t>(); ++i) {
          v.tokens.push_back(fmt::format("[PAD{}]", i));
          v.scores.push_back(v.model == "llama" ? kUnmergedScore : 0.0f);
          v.types.push_back(TokenType::Unused);
        }
      }
      if (!bos_set) id_of("bos_token_id", v.bos_id);
      if (!eos_set) id_of("eos_token_id", v.eos_id);
    } catch (const json::exception& e) {
      fail("{}: unexpected JSON structure: {}", cfg_path, e.what());
    }
  }
}

}  // namespace mcmoe::tokenizer::detail
