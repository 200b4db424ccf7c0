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
    words_llama_ = std::all_of(v_.tokens.begin(), v_.tokens.end(), space_only_leading);
    words_sp_ = user_defined_.empty() &&
                std::all_of(merge_ids_.begin(), merge_ids_.end(), [](const auto& kv) { return space_only_leading(kv.first); });
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

  // Word-level results, per encode call: the same word is merged once.
  using WordCache = std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>>;
  struct Cache {
    WordCache words;
    std::vector<int32_t> ids;
  };

  // Calls f(word) for the words of an escaped text: a word starts at a U+2581 that follows
  // another character. When no mergeable piece has U+2581 after its leading run (checked
  // at load, true of SentencePiece vocabularies trained with split_by_whitespace), no merge
  // can cross such a point, and BPE over the words gives what BPE over the whole text
  // gives while keeping every priority queue small. The text is stepped through exactly as
  // merge() splits it into characters, so malformed UTF-8 splits identically too.
  template <typename F>
  static void for_each_word(std::string_view s, F&& f) {
    size_t start = 0;
    bool prev_space = false;
    for (size_t pos = 0; pos < s.size();) {
      const bool space = s.compare(pos, kSpaceSymbol.size(), kSpaceSymbol) == 0;
      if (space && !prev_space && pos > start) {
        f(s.substr(start, pos - start));
        start = pos;
      }
      prev_space = space;
      pos += std::min(utf8_len(static_cast<uint8_t>(s[pos])), s.size() - pos);
    }
    if (start < s.size()) f(s.substr(start));
  }

  static bool space_only_leading(std::string_view piece) {
    while (piece.starts_with(kSpaceSymbol)) piece.remove_prefix(kSpaceSymbol.size());
    return piece.find(kSpaceSymbol) == std::string_view::npos;
  }

  // llama.cpp: every final symbol is a token, or is spelled with byte tokens.
  void llama_word(std::string_view text, std::vector<int32_t>& out) const {
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

  void encode_llama(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    if (!words_llama_) return llama_word(text, out);
    Cache cache;
    for_each_word(text, [&](std::string_view w) {
      auto it = cache.words.find(w);
      if (it == cache.words.end()) {
        const auto begin = static_cast<uint32_t>(cache.ids.size());
        llama_word(w, cache.ids);
        it = cache.words.emplace(w, std::make_pair(begin, static_cast<uint32_t>(cache.ids.size()) - begin)).first;
      }
      out.insert(out.end(), cache.ids.begin() + it->second.first,
                 cache.ids.begin() + it->second.first + it->second.second);
    });
  }

  // sentencepiece's output step: UNUSED pieces are split back into the pair that formed
  // them; unknown pieces become byte pieces (byte fallback) or one unk per run.
  struct SpEmitter {
    const SpmTokenizer& t;
    std::vector<int32_t>& out;
    const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>& rev_merge;
    bool prev_unk = false;
    bool saw_unk = false;  // an unknown piece was emitted (its word's ids depend on context)

    void emit(std::string_view piece, int32_t id) {
      const bool is_unk = id == t.v_.unk_id;
      saw_unk |= is_unk;
      if (is_unk && t.has_byte_tokens_) {
        for (char c : piece) {
          const int32_t b = t.byte_ids_[static_cast<uint8_t>(c)];
          out.push_back(b >= 0 ? b : t.v_.unk_id);
        }
      } else if (!(is_unk && prev_unk)) {  // runs of unknown pieces collapse into one
        out.push_back(id);
      }
      prev_unk = is_unk;
    }
    void piece(std::string_view p) {
      int32_t id = t.find_token(p);
      if (id < 0) id = t.v_.unk_id;
      if (id < 0 || t.v_.types[id] != TokenType::Unused) return emit(p, id);
      auto it = rev_merge.find(p);
      if (it == rev_merge.end()) return emit(p, id);
      piece(it->second.first);
      piece(it->second.second);
    }
  };

  // Merges one word (or the whole text) the sentencepiece way and emits its pieces.
  void sp_run(std::string_view text, SpEmitter& em) const {
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    const std::vector<Symbol> sym =
        merge(text, merge_ids_, user_defined_.empty() ? nullptr : &user_defined_, has_unused_ ? &rev_merge : nullptr);
    SpEmitter local{*this, em.out, rev_merge, em.prev_unk, em.saw_unk};
    for (int32_t i = 0; i != -1; i = sym[i].next) local.piece(text.substr(sym[i].start, sym[i].len));
    em.prev_unk = local.prev_unk;
    em.saw_unk = local.saw_unk;
  }

  void encode_sentencepiece(std::string_view text, std::vector<int32_t>& out) const {
    const std::string norm = normalizer_->normalize(text, user_defined_.empty() ? nullptr : &user_defined_);
    if (norm.empty()) return;
    const std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> none;
    SpEmitter em{*this, out, none};
    if (!words_sp_) return sp_run(norm, em);
    Cache cache;
    for_each_word(norm, [&](std::string_view w) {
      auto it = cache.words.find(w);
      if (it != cache.words.end()) {
        out.insert(out.end(), cache.ids.begin() + it->second.first,
                   cache.ids.begin() + it->second.first + it->second.second);
        em.prev_unk = false;  // only words without unknown pieces are cached
        return;
      }
      const size_t begin = out.size();
      em.saw_unk = false;
      sp_run(w, em);
      // Only words without unknown pieces are cached: their ids do not depend on context.
      if (!em.saw_unk) {
        const auto b = static_cast<uint32_t>(cache.ids.size());
        cache.ids.insert(cache.ids.end(), out.begin() + begin, out.end());
        cache.words.emplace(w, std::make_pair(b, static_cast<uint32_t>(out.size() - begin)));
      }
    });
  }

  std::array<int32_t, 256> byte_ids_;
  bool has_byte_tokens_ = false;
  bool has_unused_ = false;
  bool words_llama_ = false;  // llama flavour may be run word by word (see for_each_word)
  bool words_sp_ = false;     // sentencepiece flavour likewise
  std::unordered_map<std::string_view, int32_t> merge_ids_;  // sp_exact: pieces merges may form
  ByteTrie user_defined_;                                    // sp_exact: frozen pieces
  std::unique_ptr<SpNormalizer> normalizer_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(VocabData v) { return std::make_unique<SpmTokenizer>(std::move(v)); }

}  // namespace mcmoe::tokenizer::detail
