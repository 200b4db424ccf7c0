// Tokenizer: factories, validation, the special-token partition and decoding shared by
// the SentencePiece-style and byte-level BPE encoders.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "format/gguf.h"
#include "tokenizer/internal.h"

namespace mcmoe::tokenizer {

namespace detail {

// ---- UTF-8 -------------------------------------------------------------------------

size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp) {
  const size_t n = s.size() - pos;
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const auto trail = [&](size_t i) { return (b(i) & 0xC0) == 0x80; };
  const uint8_t c = b(0);
  uint32_t v = 0;
  size_t len = 0;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0 && n >= 2 && trail(1)) {
    v = (uint32_t{c} & 0x1F) << 6 | (b(1) & 0x3F);
    len = v >= 0x80 ? 2 : 0;
  } else if ((c & 0xF0) == 0xE0 && n >= 3 && trail(1) && trail(2)) {
    v = (uint32_t{c} & 0x0F) << 12 | uint32_t(b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    len = v >= 0x800 && (v < 0xD800 || v > 0xDFFF) ? 3 : 0;
  } else if ((c & 0xF8) == 0xF0 && n >= 4 && trail(1) && trail(2) && trail(3)) {
    v = (uint32_t{c} & 0x07) << 18 | uint32_t(b(1) & 0x3F) << 12 | uint32_t(b(2) & 0x3F) << 6 |
        (b(3) & 0x3F);
    len = v >= 0x10000 && v <= 0x10FFFF ? 4 : 0;
  }
  if (len) *cp = v;
  return len;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = 0;
    const size_t len = utf8_decode(s, pos, &cp);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      pos += 1;
    } else {
      out.append(s.substr(pos, len));
      pos += len;
    }
  }
  return out;
}

// ---- ByteTrie ----------------------------------------------------------------------

ByteTrie::ByteTrie() : nodes_(1) { root_.fill(-1); }

int32_t ByteTrie::child(int32_t node, uint8_t b) const {
  if (node == 0) return root_[b];
  const auto& kids = nodes_[node].kids;
  auto it = std::lower_bound(kids.begin(), kids.end(), b,
                             [](const std::pair<uint8_t, int32_t>& k, uint8_t x) { return k.first < x; });
  return it != kids.end() && it->first == b ? it->second : -1;
}

void ByteTrie::insert(std::string_view key, int32_t value) {
  int32_t node = 0;
  for (char ch : key) {
    const auto b = static_cast<uint8_t>(ch);
    int32_t next = child(node, b);
    if (next < 0) {
      next = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      if (node == 0) {
        root_[b] = next;
      } else {
        auto& kids = nodes_[node].kids;
        kids.insert(std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t{-1})),
                    {b, next});
      }
    }
    node = next;
  }
  if (node != 0 && nodes_[node].value < 0) nodes_[node].value = value;
}

size_t ByteTrie::longest_prefix(std::string_view s, int32_t* value) const {
  size_t best = 0;
  for_each_prefix(s, [&](size_t len, int32_t v) {
    best = len;
    if (value) *value = v;
  });
  return best;
}

// ---- validation --------------------------------------------------------------------

void validate_vocab(const VocabData& v, const KeyNames& k) {
  const auto n = v.tokens.size();
  if (v.model != "llama" && v.model != "gpt2") {
    fail("{}: tokenizer model '{}' is not supported (expected 'llama' or 'gpt2')", v.source, v.model);
  }
  if (n == 0) fail("{}: {} is empty: the vocabulary has no tokens", v.source, k.tokens);
  if (n > uint64_t{INT32_MAX}) fail("{}: {} has {} tokens, more than int32 ids allow", v.source, k.tokens, n);
  if (v.scores.size() != n) {
    fail("{}: {} has {} entries but {} has {}", v.source, k.scores, v.scores.size(), k.tokens, n);
  }
  if (v.types.size() != n) {
    fail("{}: {} has {} entries but {} has {}", v.source, k.types, v.types.size(), k.tokens, n);
  }
  const auto check = [&](int32_t id, const std::string& key) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      fail("{}: {} = {} is out of range: the vocabulary has {} tokens", v.source, key, id, n);
    }
  };
  check(v.bos_id, k.bos);
  check(v.eos_id, k.eos);
  check(v.unk_id, k.unk);
  check(v.pad_id, k.pad);
  // A BYTE token stands for the byte its text names (<0xHH>, as SentencePiece spells them), one
  // token per byte: anything else would decode as its literal text, silently.
  std::array<int64_t, 256> byte_token;
  byte_token.fill(-1);
  for (size_t i = 0; i < n; ++i) {
    if (v.types[i] != TokenType::Byte) continue;
    const std::string& t = v.tokens[i];
    const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>' || !hex(t[3]) || !hex(t[4])) {
      fail("{}: token {} '{}' has type BYTE in {} but is not of the form <0xHH>", v.source, i, t,
           k.types);
    }
    const int b = std::stoi(t.substr(3, 2), nullptr, 16);
    if (byte_token[b] >= 0 &&
        v.tokens[byte_token[b]] != t) {  // equal texts: the duplicate check says so
      fail("{}: tokens {} '{}' and {} '{}' both have type BYTE for byte 0x{:02X} ({})", v.source,
           byte_token[b], v.tokens[byte_token[b]], i, t, b, k.types);
    }
    byte_token[b] = static_cast<int64_t>(i);
  }
  if (v.add_bos && v.bos_id < 0) fail("{}: {} is true but no BOS id is set ({})", v.source, k.add_bos, k.bos);
  if (v.add_eos && v.eos_id < 0) fail("{}: {} is true but no EOS id is set ({})", v.source, k.add_eos, k.eos);
}

}  // namespace detail

// ---- Tokenizer ---------------------------------------------------------------------

struct Tokenizer::SpecialTrie {
  detail::ByteTrie trie;           // value: index into `ids`
  std::vector<int32_t> ids;        // candidates, longest text first (the match priority)
  std::vector<uint8_t> user;       // 1: user-defined (always matched), 0: control/unknown
};

Tokenizer::~Tokenizer() = default;

Tokenizer::Tokenizer(VocabData v) : v_(std::move(v)) {
  token_to_id_.reserve(v_.tokens.size() * 2);
  for (size_t i = 0; i < v_.tokens.size(); ++i) {
    auto [it, inserted] = token_to_id_.emplace(v_.tokens[i], static_cast<int32_t>(i));
    if (!inserted) {
      fail("{}: duplicate token '{}' at ids {} and {}", v_.source, v_.tokens[i], it->second, i);
    }
    if (v_.tokens[i].empty()) fail("{}: token {} is empty", v_.source, i);
  }
  auto sp = std::make_shared<SpecialTrie>();
  for (size_t i = 0; i < v_.types.size(); ++i) {
    const TokenType t = v_.types[i];
    if (t == TokenType::UserDefined || t == TokenType::Control || t == TokenType::Unknown) {
      sp->ids.push_back(static_cast<int32_t>(i));
    }
  }
  // llama.cpp cuts longer special tokens out first; ties keep id order (deterministic).
  std::stable_sort(sp->ids.begin(), sp->ids.end(), [&](int32_t a, int32_t b) {
    return v_.tokens[a].size() > v_.tokens[b].size();
  });
  for (size_t r = 0; r < sp->ids.size(); ++r) {
    sp->trie.insert(v_.tokens[sp->ids[r]], static_cast<int32_t>(r));
    sp->user.push_back(v_.types[sp->ids[r]] == TokenType::UserDefined);
  }
  specials_ = std::move(sp);
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(VocabData v) {
  detail::validate_vocab(v, {"tokens", "scores", "token types", "bos id", "eos id", "unk id",
                             "pad id", "add_bos", "add_eos"});
  if (v.model == "llama") return detail::make_spm_tokenizer(std::move(v));
  return detail::make_bpe_tokenizer(std::move(v));
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const format::GgufFile& gguf) {
  VocabData v = detail::read_gguf_vocab(gguf);  // validated with the GGUF key names
  if (v.model == "llama") return detail::make_spm_tokenizer(std::move(v));
  return detail::make_bpe_tokenizer(std::move(v));
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) fail("{}: not a directory (expected a Hugging Face model directory)", dir);
  const fs::path p(dir);
  VocabData v;
  if (fs::exists(p / "tokenizer.model")) {
    v = detail::read_sentencepiece_model((p / "tokenizer.model").string());
  } else if (fs::exists(p / "tokenizer.json")) {
    v = detail::read_hf_tokenizer_json((p / "tokenizer.json").string());
  } else {
    fail("{}: found neither tokenizer.model nor tokenizer.json", dir);
  }
  detail::apply_hf_config_files(dir, v);
  return from_vocab(std::move(v));
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab()) {
    fail("{}: token id {} is out of range: the vocabulary has {} tokens", v_.source, id, n_vocab());
  }
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return v_.tokens[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id);
  return v_.types[id];
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  if (text.empty()) return out;
  const SpecialTrie& sp = *specials_;
  // Every occurrence of every eligible special token, as (priority rank, position).
  std::vector<std::pair<int32_t, uint32_t>> occ;
  if (!sp.ids.empty()) {
    for (size_t pos = 0; pos < text.size(); ++pos) {
      sp.trie.for_each_prefix(text.substr(pos), [&](size_t, int32_t rank) {
        if (parse_special || sp.user[rank]) occ.emplace_back(rank, static_cast<uint32_t>(pos));
      });
    }
  }
  if (occ.empty()) {
    out.push_back({-1, text});
    return out;
  }
  // llama.cpp takes the tokens one by one, longest first, and cuts each token's
  // occurrences (leftmost, non-overlapping) out of whatever text is still raw. Replaying
  // that over the precomputed occurrences gives the same cuts without rescanning the text
  // once per special token (deepseek has ~2400 of them).
  std::sort(occ.begin(), occ.end());
  std::vector<uint8_t> taken(text.size(), 0);
  std::vector<std::pair<uint32_t, int32_t>> cuts;  // (position, token id)
  size_t i = 0;
  while (i < occ.size()) {
    const int32_t rank = occ[i].first;
    const size_t len = v_.tokens[sp.ids[rank]].size();
    size_t last_end = 0;
    for (; i < occ.size() && occ[i].first == rank; ++i) {
      const size_t pos = occ[i].second;
      if (pos < last_end) continue;
      if (std::any_of(taken.begin() + pos, taken.begin() + pos + len, [](uint8_t t) { return t != 0; })) {
        continue;
      }
      std::fill(taken.begin() + pos, taken.begin() + pos + len, uint8_t{1});
      cuts.emplace_back(static_cast<uint32_t>(pos), sp.ids[rank]);
      last_end = pos + len;
    }
  }
  std::sort(cuts.begin(), cuts.end());
  size_t prev = 0;
  for (const auto& [pos, id] : cuts) {
    if (pos > prev) out.push_back({-1, text.substr(prev, pos - prev)});
    out.push_back({id, text.substr(pos, v_.tokens[id].size())});
    prev = pos + v_.tokens[id].size();
  }
  if (prev < text.size()) out.push_back({-1, text.substr(prev)});
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool first = true;
  for (const int32_t id : ids) {
    check_id(id);
    if (v_.types[id] == TokenType::Control) continue;
    std::string piece = token_to_piece(id);
    if (first && v_.add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    first = false;
    out += piece;
  }
  return out;
}

void Tokenizer::write_gguf_metadata(format::GgufWriter& w) const { detail::write_gguf_vocab(v_, w); }

}  // namespace mcmoe::tokenizer
