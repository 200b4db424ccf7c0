// GPT-2 byte-level BPE (llama.cpp's "gpt2" vocabulary): the text is split into words by
// the family's regexes, each word's UTF-8 bytes are mapped to printable characters
// (GPT-2's bytes_to_unicode), and the adjacent pair with the lowest merge rank is merged
// until none is left (ties: leftmost). Merges are looked up by the ids of their two
// parts, with the id of the result precomputed, so the merge loop never builds strings.
#include <array>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/internal.h"
#include "tokenizer/pretokenize.h"

namespace mcmoe::tokenizer::detail {

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
std::array<uint32_t, 256> byte_to_codepoint() {
  std::array<uint32_t, 256> m{};
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    m[b] = printable ? b : 256 + n++;
  }
  return m;
}

struct Sym {
  int32_t prev;
  int32_t next;
  uint32_t start;
  uint32_t len;  // 0 once merged into its left neighbour
  int32_t part;  // id of the symbol's text among tokens and merge parts (-1: neither)
};

struct Pair {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_part;
  int32_t right_part;
  int32_t result;
};

// Lowest rank first; equal ranks: leftmost first (as llama.cpp and HF tokenizers).
struct PairOrder {
  bool operator()(const Pair& a, const Pair& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(VocabData v) : Tokenizer(std::move(v)) {
    const PreFamily* fam = find_pre_family(v_.pre);
    if (!fam) {
      fail("{}: pre-tokenizer '{}' (tokenizer.ggml.pre) is not supported; known: {}", v_.source, v_.pre,
           known_pre_families());
    }
    pre_ = std::make_unique<PreTokenizer>(*fam, v_.source);

    const auto cps = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) {
      utf8_append(byte_chars_[b], cps[b]);
      cp_to_byte_.emplace(cps[b], static_cast<uint8_t>(b));
    }
    const auto n = static_cast<int32_t>(v_.tokens.size());
    // A merge must name tokens: its two parts and their concatenation (Hugging Face's BPE
    // refuses a merge otherwise; llama.cpp would silently never apply it).
    const auto token_of = [&](const std::string& s, size_t r, const std::string& m,
                              const char* what) {
      const int32_t id = find_token(s);
      if (id < 0)
        fail("{}: merge {} ('{}'): its {} '{}' is not a token of the vocabulary", v_.source, r, m,
             what, s);
      return id;
    };
    ranks_.reserve(v_.merges.size() * 2);
    for (size_t r = 0; r < v_.merges.size(); ++r) {
      const std::string& m = v_.merges[r];
      const size_t sp = m.find(' ', 1);  // as llama.cpp: a part may itself start with ' '
      if (sp == std::string::npos || sp + 1 >= m.size()) {
        fail("{}: merge {} ('{}') is not of the form 'left right'", v_.source, r, m);
      }
      const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
      const int32_t pa = token_of(a, r, m, "left part"), pb = token_of(b, r, m, "right part");
      const int32_t res = token_of(a + b, r, m, "result");
      ranks_.emplace(key(pa, pb), std::make_pair(static_cast<int32_t>(r), res));  // first rank wins
    }

    pieces_.resize(n);
    for (int32_t i = 0; i < n; ++i) pieces_[i] = make_piece(i);
  }

 protected:
  std::vector<int32_t> encode_impl(std::string_view text, bool parse_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    // Words repeat (Zipf): each distinct word is merged once per call.
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>> cache;
    std::vector<int32_t> cached;
    std::vector<std::string_view> words;
    std::string encoded;
    for (const Fragment& f : partition(text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      std::string clean = utf8_sanitize(f.text);  // malformed bytes → U+FFFD, as llama.cpp
      // Hugging Face's ByteLevel(add_prefix_space): every run of text between special
      // tokens gets a leading space unless it has one, before the regexes see it.
      if (v_.add_space_prefix && clean.front() != ' ') clean.insert(clean.begin(), ' ');
      words.clear();
      pre_->split(clean, words);
      for (std::string_view w : words) {
        encoded.clear();
        for (char c : w) encoded += byte_chars_[static_cast<uint8_t>(c)];
        auto it = cache.find(encoded);
        if (it == cache.end()) {
          const auto begin = static_cast<uint32_t>(cached.size());
          encode_word(encoded, cached);
          it = cache.emplace(encoded, std::make_pair(begin, static_cast<uint32_t>(cached.size()) - begin)).first;
        }
        out.insert(out.end(), cached.begin() + it->second.first,
                   cached.begin() + it->second.first + it->second.second);
      }
    }
    return out;
  }

 private:
  static uint64_t key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

  int32_t part_of(std::string_view s) const { return find_token(s); }

  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (v_.ignore_merges) {
      const int32_t id = find_token(word);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    std::vector<Sym> sym;
    sym.reserve(word.size());
    for (size_t pos = 0; pos < word.size();) {
      const size_t len = std::min(utf8_len(static_cast<uint8_t>(word[pos])), word.size() - pos);
      const auto idx = static_cast<int32_t>(sym.size());
      sym.push_back({idx - 1, pos + len == word.size() ? -1 : idx + 1, static_cast<uint32_t>(pos),
                     static_cast<uint32_t>(len), part_of(word.substr(pos, len))});
      pos += len;
    }
    std::priority_queue<Pair, std::vector<Pair>, PairOrder> queue;
    const auto try_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[l].part < 0 || sym[r].part < 0) return;
      auto it = ranks_.find(key(sym[l].part, sym[r].part));
      if (it == ranks_.end()) return;
      queue.push({it->second.first, l, r, sym[l].part, sym[r].part, it->second.second});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const Pair p = queue.top();
      queue.pop();
      Sym& l = sym[p.left];
      Sym& r = sym[p.right];
      if (l.len == 0 || r.len == 0 || l.next != p.right || l.part != p.left_part || r.part != p.right_part) {
        continue;  // stale
      }
      l.len += r.len;
      l.part = p.result;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = p.left;
      try_add(l.prev, p.left);
      try_add(p.left, l.next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
      if (sym[i].part >= 0) {
        out.push_back(sym[i].part);
        continue;
      }
      // Not a token: llama.cpp falls back to the tokens of its single bytes, if any.
      for (char c : word.substr(sym[i].start, sym[i].len)) {
        const int32_t id = find_token(std::string_view(&c, 1));
        if (id >= 0) out.push_back(id);
      }
    }
  }

  std::string make_piece(int32_t id) const {
    const std::string& text = v_.tokens[id];
    switch (v_.types[id]) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::UserDefined: return text;
      default: break;
    }
    std::string out;
    for (size_t pos = 0; pos < text.size();) {
      uint32_t cp = 0;
      const size_t len = utf8_decode(text, pos, &cp);
      if (len == 0) {  // malformed vocabulary entry: keep the byte
        out += text[pos++];
        continue;
      }
      auto it = cp_to_byte_.find(cp);
      if (it != cp_to_byte_.end()) {
        out += static_cast<char>(it->second);
      } else {
        out.append(text, pos, len);  // not a byte-level character: keep it as text
      }
      pos += len;
    }
    return out;
  }

  std::unique_ptr<PreTokenizer> pre_;
  std::array<std::string, 256> byte_chars_;        // byte → its character (UTF-8)
  std::unordered_map<uint32_t, uint8_t> cp_to_byte_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>
      ranks_;  // (left, right) → (rank, result)
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(VocabData v) { return std::make_unique<BpeTokenizer>(std::move(v)); }

}  // namespace mcmoe::tokenizer::detail
