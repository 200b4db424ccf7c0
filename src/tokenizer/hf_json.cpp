// Hugging Face tokenizer.json (model.vocab, model.merges in both the "a b" and ["a", "b"]
// forms, added_tokens, normalizer / pre_tokenizer → family) and the tokenizer_config.json
// / config.json settings of a model directory (special tokens, add_bos/add_eos, size).
//
// A byte-level BPE (pre_tokenizer with ByteLevel) becomes a "gpt2" vocabulary whose
// family is found by comparing its split regexes with the known ones. A SentencePiece-
// style BPE (byte_fallback, Metaspace, or a normaliser replacing ' ' by U+2581) becomes a
// "llama" vocabulary with scores derived from the merge ranks (score = -rank of the first
// merge forming the token), which is how the SentencePiece trainer orders them too.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/internal.h"
#include "tokenizer/pretokenize.h"

namespace mcmoe::tokenizer::detail {

namespace {

using nlohmann::json;

constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
// Score for tokens no merge forms: merging reaches them last, if ever.
constexpr float kUnmergedScore = -1e9f;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

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

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

struct PreInfo {
  std::vector<std::string> patterns;
  bool byte_level = false;
  bool metaspace = false;
  bool metaspace_prefix = true;
};

void walk_pre(const json& p, const std::string& path, PreInfo& info) {
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    const json* list = member(p, "pretokenizers");
    if (!list || !list->is_array()) fail("{}: pre_tokenizer Sequence without a 'pretokenizers' array", path);
    for (const json& q : *list) walk_pre(q, path, info);
  } else if (type == "Split") {
    const json* pat = member(p, "pattern");
    std::string re;
    if (pat && member(*pat, "Regex")) {
      re = (*pat)["Regex"].get<std::string>();
    } else if (pat && member(*pat, "String")) {
      re = regex_escape((*pat)["String"].get<std::string>());
    } else {
      fail("{}: pre_tokenizer Split without a pattern", path);
    }
    const std::string behavior = p.value("behavior", "Isolated");
    if (behavior != "Isolated" || p.value("invert", false)) {
      fail("{}: pre_tokenizer Split /{}/ with behavior '{}'{} is not supported (only Isolated)", path, re, behavior,
           p.value("invert", false) ? " inverted" : "");
    }
    info.patterns.push_back(re);
  } else if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) fail("{}: pre_tokenizer ByteLevel with add_prefix_space is not supported", path);
    if (p.value("use_regex", true)) info.patterns.push_back(kGpt2Regex);
    info.byte_level = true;
  } else if (type == "Digits") {
    info.patterns.push_back(p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "Metaspace") {
    info.metaspace = true;
    const std::string scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
    info.metaspace_prefix = scheme != "never";
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported", path, type);
  }
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
  const json j = read_json(path);
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
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= INT32_MAX) {
        fail("{}: model.vocab['{}'] = {} is not a valid token id", path, tok, id.dump());
      }
      max_id = std::max(max_id, id.get<int64_t>());
    }
    const json* added = member(j, "added_tokens");
    if (added && !added->is_array()) fail("{}: key 'added_tokens' is not an array", path);
    if (added) {
      for (size_t i = 0; i < added->size(); ++i) {
        const json& a = (*added)[i];
        if (!member(a, "id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
            a["id"].get<int64_t>() >= INT32_MAX || !member(a, "content") || !a["content"].is_string()) {
          fail("{}: added_tokens[{}] lacks a valid 'id' or 'content'", path, i);
        }
        max_id = std::max(max_id, a["id"].get<int64_t>());
      }
    }
    if (max_id < 0) fail("{}: model.vocab is empty", path);
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

    PreInfo pre;
    if (const json* p = member(j, "pre_tokenizer")) walk_pre(*p, path, pre);
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
      const PreFamily* fam = match_pre_family(pre.patterns);
      if (!fam) {
        std::string list;
        for (const auto& p : pre.patterns) list += (list.empty() ? "/" : ", /") + p + "/";
        fail("{}: pre_tokenizer splits [{}] match no supported family ({})", path, list, known_pre_families());
      }
      v.model = "gpt2";
      v.pre = fam->name;
      v.scores.assign(n, 0.0f);
      v.add_bos = fam->add_bos;
    }

    // A post-processor that starts every sequence with a special token means BOS.
    if (const json* pp = member(j, "post_processor"); pp && pp->value("type", "") == "TemplateProcessing") {
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
    const json tc = read_json(tc_path);
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
    const json cfg = read_json(cfg_path);
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
        if (!vs->is_number_integer() || vs->get<int64_t>() <= 0 || vs->get<int64_t>() >= INT32_MAX) {
          fail("{}: vocab_size = {} is not a valid size", cfg_path, vs->dump());
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
