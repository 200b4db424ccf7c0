// SentencePiece-style BPE (llama.cpp's "llama" vocabulary): text → U+2581-escaped
// characters → greedy merging of the adjacent pair whose merged piece has the highest
// score (ties: leftmost) → pieces, with unknown pieces spelled as <0xNN> byte tokens.
//
// Two flavours share the merge loop:
//  - llama.cpp's (vocabularies from GGUF): ' ' prefix per raw fragment, ' ' → U+2581,
//    any vocabulary entry may be formed by a merge, user-defined tokens cut out first.
//  - sentencepiece's (sp_exact, vocabularies from tokenizer.model): the normaliser runs
//    first (charsmap, whitespace), only NORMAL / USER_DEFINED / UNUSED pieces are formed,
//    user-defined pieces are frozen symbols, UNUSED pieces are split back into the pair
//    that formed them, and without byte fallback a run of unknown pieces becomes one unk.
// The merge loop keeps a priority queue of candidate pairs over a linked list of symbols,
// so a text of n characters costs O(n log n) (whole files are encoded in one go).
#include <algorithm>
#include <array>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/internal.h"
#include "tokenizer/normalizer.h"

namespace mcmoe::tokenizer::detail {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";

struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;  // byte offset in the text
  uint32_t len;    // 0 once merged into its left neighbour
  bool frozen;     // user-defined piece (sentencepiece): never merged
};

struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t len;
};

// Highest score first; equal scores: leftmost first (sentencepiece and llama.cpp agree).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(VocabData v) : Tokenizer(std::move(v)) {
    const size_t n = v_.tokens.size();
    byte_ids_.fill(-1);
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      byte_ids_[b] = find_token(name);
      if (byte_ids_[b] < 0 && !v_.sp_exact) byte_ids_[b] = find_token(std::string(1, static_cast<char>(b)));
    }
    for (size_t i = 0; i < n; ++i) {
      const TokenType t = v_.types[i];
      has_byte_tokens_ |= t == TokenType::Byte;
      has_unused_ |= t == TokenType::Unused;
      if (v_.sp_exact && (t == TokenType::Normal || t == TokenType::UserDefined || t == TokenType::Unused)) {
        merge_ids_.emplace(v_.tokens[i], static_cast<int32_t>(i));
      }
      if (v_.sp_exact && t == TokenType::UserDefined) user_defined_.insert(v_.tokens[i], static_cast<int32_t>(i));
    }
    if (v_.sp_exact) {
      normalizer_ = std::make_unique<SpNormalizer>(
          v_.precompiled_charsmap,
          SpNormalizer::Options{.add_dummy_prefix = v_.add_space_prefix,
                                .remove_extra_whitespaces = v_.remove_extra_whitespaces},
          v_.source);
    }
    pieces_.resize(n);
    for (size_t i = 0; i < n; ++i) pieces_[i] = make_piece(static_cast<int32_t>(i));
  }

  std::string token_to_piece(int32_t id) const override {
    check_id(id);
    return pieces_[id];
  }

 protected:
  std::vector<int32_t> encode_impl(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (v_.sp_exact && !parse_special) {
      // sentencepiece handles user-defined pieces itself (normaliser + frozen symbols).
      encode_sentencepiece(text, out);
      return out;
    }
    bool prev_special = true;  // llama.cpp: the first fragment gets the space prefix too
    for (const Fragment& f : partition(text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      if (v_.sp_exact) {
        encode_sentencepiece(f.text, out);
      } else {
        std::string s;
        s.reserve(f.text.size() * 2 + 3);
        if (v_.add_space_prefix && prev_special) s += kSpaceSymbol;
        for (char c : f.text) {
          if (c == ' ') {
            s += kSpaceSymbol;
          } else {
            s += c;
          }
        }
        encode_llama(s, out);
      }
      prev_special = false;
    }
    return out;
  }

 private:
  std::string make_piece(int32_t id) const {
    const std::string& text = v_.tokens[id];
    switch (v_.types[id]) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::UserDefined: return text;
      case TokenType::Byte:
        if (text.size() == 6 && text.starts_with("<0x") && text[5] == '>' && hex_digit(text[3]) >= 0 &&
            hex_digit(text[4]) >= 0) {
          return std::string(1, static_cast<char>(hex_digit(text[3]) * 16 + hex_digit(text[4])));
        }
        return text;
      default: {
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
          if (text.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
            out += ' ';
            i += kSpaceSymbol.size();
          } else {
            out += text[i++];
          }
        }
        return out;
      }
    }
  }

  // Splits `text` into characters (user-defined pieces whole and frozen when `frozen` is
  // set) and merges pairs found in `lookup` by score. Returns the surviving symbols.
  std::vector<Symbol> merge(std::string_view text, const std::unordered_map<std::string_view, int32_t>& lookup,
                            const ByteTrie* frozen,
                            std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>*
                                rev_merge) const {
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      size_t len = 0;
      bool is_frozen = false;
      if (frozen) {
        len = frozen->longest_prefix(text.substr(pos));
        is_frozen = len > 0;
      }
      if (!len) len = std::min(utf8_len(static_cast<uint8_t>(text[pos])), text.size() - pos);
      const auto idx = static_cast<int32_t>(sym.size());
      sym.push_back({idx - 1, pos + len == text.size() ? -1 : idx + 1, static_cast<uint32_t>(pos),
                     static_cast<uint32_t>(len), is_frozen});
      pos += len;
    }
    std::vector<Bigram> storage;
    storage.reserve(sym.size());
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> agenda(BigramOrder{}, std::move(storage));
    const auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[l].frozen || sym[r].frozen) return;
      const std::string_view piece = text.substr(sym[l].start, sym[l].len + sym[r].len);
      auto it = lookup.find(piece);
      if (it == lookup.end()) return;
      agenda.push({v_.scores[it->second], l, r, static_cast<uint32_t>(piece.size())});
      if (rev_merge && v_.types[it->second] == TokenType::Unused) {
        (*rev_merge)[piece] = {text.substr(sym[l].start, sym[l].len), text.substr(sym[r].start, sym[r].len)};
      }
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!agenda.empty()) {
      const Bigram b = agenda.top();
      agenda.pop();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      // Stale: one side was merged away or has grown since the pair was queued.
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    return sym;
  }

  void encode_llama(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    const std::vector<Symbol> sym = merge(text, token_to_id_, nullptr, nullptr);
    for (int32_t i = 0; i != -1; i = sym[i].next) {
      const std::string_view piece = text.substr(sym[i].start, sym[i].len);
      const int32_t id = find_token(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {  // byte fallback
        const int32_t b = byte_ids_[static_cast<uint8_t>(c)];
        if (b >= 0) {
          out.push_back(b);
        } else if (v_.unk_id >= 0) {
          out.push_back(v_.unk_id);
        }
      }
    }
  }

  void encode_sentencepiece(std::string_view text, std::vector<int32_t>& out) const {
    const std::string norm = normalizer_->normalize(text, user_defined_.empty() ? nullptr : &user_defined_);
    if (norm.empty()) return;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    const std::vector<Symbol> sym = merge(norm, merge_ids_, user_defined_.empty() ? nullptr : &user_defined_,
                                          has_unused_ ? &rev_merge : nullptr);
    bool prev_unk = false;
    const auto emit = [&](std::string_view piece, int32_t id) {
      const bool is_unk = id == v_.unk_id;
      if (is_unk && has_byte_tokens_) {
        for (char c : piece) {
          const int32_t b = byte_ids_[static_cast<uint8_t>(c)];
          out.push_back(b >= 0 ? b : v_.unk_id);
        }
      } else if (!(is_unk && prev_unk)) {  // runs of unknown pieces collapse into one
        out.push_back(id);
      }
      prev_unk = is_unk;
    };
    // An UNUSED piece is never output: it is split back into the pair that formed it.
    const auto resegment = [&](auto&& self, std::string_view piece) -> void {
      int32_t id = find_token(piece);
      if (id < 0) id = v_.unk_id;
      if (id < 0 || v_.types[id] != TokenType::Unused) return emit(piece, id);
      auto it = rev_merge.find(piece);
      if (it == rev_merge.end()) return emit(piece, id);
      self(self, it->second.first);
      self(self, it->second.second);
    };
    for (int32_t i = 0; i != -1; i = sym[i].next) {
      resegment(resegment, std::string_view(norm).substr(sym[i].start, sym[i].len));
    }
  }

  std::array<int32_t, 256> byte_ids_;
  bool has_byte_tokens_ = false;
  bool has_unused_ = false;
  std::unordered_map<std::string_view, int32_t> merge_ids_;  // sp_exact: pieces merges may form
  ByteTrie user_defined_;                                    // sp_exact: frozen pieces
  std::unique_ptr<SpNormalizer> normalizer_;
  std::vector<std::string> pieces_;  // token_to_piece, precomputed
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData v) { return std::make_unique<SpmTokenizer>(std::move(v)); }

}  // namespace mcmoe::tokenizer::detail
