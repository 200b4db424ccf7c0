#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/internal.h"

namespace mcmoe::tokenizer::detail {

namespace {

// The patterns are llama.cpp's (src/llama-vocab.cpp), which reproduce the Hugging Face
// tokenizers' splits; non-ASCII characters are written as \x{...} so that canonically
// equivalent characters (U+1F7D vs U+03CE) cannot be confused in the source.
// GPT-2's keeps Hugging Face's final \s+, which llama.cpp leaves out: the only text it
// matches is one whitespace character before a non-space, which llama.cpp keeps as a
// piece of its own anyway, and with it the regex matches every character.
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kNewline = R"([\r\n])";
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct = R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepseek3Cjk = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
constexpr const char* kDeepseek3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Mistral's tekken and OpenAI's o200k (GPT-4o, Llama 4): Hugging Face's patterns, which
// PCRE2 runs as they are (llama.cpp rewrites them with lookaheads for std::regex).
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kPoro = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";

struct FamilyEntry {
  PreFamily family;
  std::vector<std::string> aliases;
};

// llama.cpp's pre-tokenizer types: the names that select each (aliases), its regexes
// (llm_tokenizer_bpe's constructor) and its flags. Families whose regexes cover every
// character are marked so (see PreFamily::matches_cover_text).
const std::vector<FamilyEntry>& families() {
  constexpr bool kIgnoreMerges = true, kAddBos = true, kCoversText = true;
  static const std::vector<FamilyEntry> k = {
      {{"gpt-2", {kGpt2}, false, false, kCoversText},
       {"phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "jina-v1-en", "jina-v2-code",
        "roberta-bpe", "mpt", "olmo", "jais", "exaone4", "modern-bert", "mellum", "a.x-4.0", "trillion",
        "granite-docling"}},
      {{"llama-bpe", {kLlama3}, kIgnoreMerges, kAddBos, kCoversText},
       {"llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}},
      {{"dbrx", {kLlama3}, false, false, kCoversText}, {"smaug-bpe"}},
      {{"qwen2", {kQwen2}, false, false, kCoversText},
       {"deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open"}},
      {{"deepseek-llm", {kNewline, kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}, false, false, false}, {}},
      {{"deepseek-coder", {kNewline, R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}, false, false, false}, {}},
      {{"deepseek-v3", {R"(\p{N}{1,3})", kDeepseek3Cjk, kDeepseek3Main}, false, false, false}, {"hunyuan-dense", "joyai-llm", "hy_v4"}},
      {{"starcoder", {R"(\p{N})", kGpt2}, false, false, false},
       {"refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"}},
      {{"falcon", {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false, false}, {}},
      {{"chatglm-bpe", {kLlama3}, false, false, kCoversText}, {"glm4"}},
      {{"tekken", {kTekken}, kIgnoreMerges, kAddBos, kCoversText}, {}},
      {{"gpt-4o", {kGpt4o}, false, false, kCoversText}, {"llama4", "kanana2", "talkie", "minimax-m2"}},
      {{"poro-chat", {kPoro}, false, false, false}, {"bloom", "gpt3-finnish"}},
      {{"viking", {kPoro, R"(\p{N})"}, false, false, false}, {}},
      {{"default", {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false, false}, {}},
  };
  return k;
}

// A spelling-neutral form of a pattern for comparing tokenizer.json regexes with ours:
// non-ASCII characters as \x{HEX}, literal CR/LF as \r/\n, (?i:'s|...) as llama.cpp's
// case-explicit contractions.
std::string canonical(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size();) {
    uint32_t cp = 0;
    size_t len = utf8_decode(p, i, &cp);
    if (len == 0) {
      cp = static_cast<uint8_t>(p[i]);
      len = 1;
    }
    if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp >= 0x80) {
      out += fmt::format("\\x{{{:X}}}", cp);
    } else {
      out += static_cast<char>(cp);
    }
    i += len;
  }
  const std::string ci = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  const std::string cs = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  for (size_t at = out.find(ci); at != std::string::npos; at = out.find(ci, at + cs.size())) {
    out.replace(at, ci.size(), cs);
  }
  return out;
}

}  // namespace

const PreFamily* find_pre_family(std::string_view pre) {
  for (const auto& e : families()) {
    if (e.family.name == pre) return &e.family;
    for (const auto& a : e.aliases) {
      if (a == pre) return &e.family;
    }
  }
  return nullptr;
}

const PreFamily* match_pre_family(const std::vector<std::string>& patterns, bool ignore_merges) {
  std::vector<std::string> wanted;
  for (const auto& p : patterns) wanted.push_back(canonical(p));
  const PreFamily* first = nullptr;
  for (const auto& e : families()) {
    if (e.family.regexes.size() != wanted.size()) continue;
    bool same = true;
    for (size_t i = 0; i < wanted.size() && same; ++i) same = wanted[i] == canonical(e.family.regexes[i]);
    if (!same) continue;
    if (e.family.ignore_merges == ignore_merges) return &e.family;
    if (!first) first = &e.family;
  }
  return first;
}

std::string known_pre_families() {
  std::string out;
  for (const auto& e : families()) {
    out += (out.empty() ? "" : ", ") + e.family.name;
    for (const auto& a : e.aliases) out += ", " + a;
  }
  return out;
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(const PreFamily& family, const std::string& source)
    : family_(family), source_(source) {
  for (const std::string& re : family_.regexes) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    auto c = std::make_unique<Compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                            PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
    if (!c->code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      fail("{}: pre-tokenizer '{}': regex /{}/ does not compile at offset {}: {}", source_, family_.name, re,
           err_off, reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE);  // the interpreter still works if JIT is unavailable
    regexes_.push_back(std::move(c));
  }
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  if (text.empty()) return;
  std::vector<std::string_view> pieces{text}, next;
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  if (!md || !mc || !js) fail("{}: pre-tokenizer: out of memory for PCRE2 match data", source_);
  pcre2_jit_stack_assign(mc, nullptr, js);
  struct Cleanup {
    pcre2_match_data* md;
    pcre2_match_context* mc;
    pcre2_jit_stack* js;
    ~Cleanup() {
      pcre2_match_data_free(md);
      pcre2_match_context_free(mc);
      pcre2_jit_stack_free(js);
    }
  } cleanup{md, mc, js};

  for (const auto& re : regexes_) {
    next.clear();
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      // The piece is the whole subject: lookarounds and $ do not see past it.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0, last_end = 0;
      while (start < piece.size()) {
        const int rc = pcre2_match(re->code, subject, piece.size(), start, PCRE2_NO_UTF_CHECK, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR msg[256];
          pcre2_get_error_message(rc, msg, sizeof(msg));
          fail("{}: pre-tokenizer '{}': regex match failed: {}", source_, family_.name,
               reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t b = ov[0], e = ov[1];
        if (e == b) {  // an empty match is not a piece: step over one character
          start = b + utf8_len(static_cast<uint8_t>(piece[b < piece.size() ? b : 0]));
          continue;
        }
        if (b > last_end) next.push_back(piece.substr(last_end, b - last_end));
        next.push_back(piece.substr(b, e - b));
        last_end = start = e;
      }
      if (last_end < piece.size()) next.push_back(piece.substr(last_end));
    }
    pieces.swap(next);
  }
  words.insert(words.end(), pieces.begin(), pieces.end());
}

}  // namespace mcmoe::tokenizer::detail
