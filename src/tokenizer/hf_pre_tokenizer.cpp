// tokenizer.json pre_tokenizer → HfPreTokenizer. The steps are read with Hugging Face's
// semantics (tokenizers/src/pre_tokenizers): Sequence applies its steps in order, each to
// every piece the previous ones produced; Split(Isolated) keeps both the matches and the
// text between them as pieces; Digits is Split on \p{N} (one piece per digit, or per run);
// ByteLevel optionally prefixes a space, splits with GPT-2's regex (use_regex) and maps
// bytes to characters. That is also how llama.cpp applies a type's regexes, so a list of
// Isolated splits equals a type when its regexes do.
#include "tokenizer/hf_pre_tokenizer.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace mcmoe::tokenizer::detail {

namespace {

using nlohmann::json;

constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const json* member(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

struct SplitStep {
  std::string regex;
  // Split(behavior = Removed, invert = true): only the matches are kept. Equal to Isolated
  // when the matches cover the text (PreFamily::matches_cover_text).
  bool keeps_only_matches = false;
};

struct Walk {
  const std::string& path;
  HfPreTokenizer out;
  std::vector<SplitStep> steps;
  bool after_byte_level = false;  // a ByteLevel step was seen
};

void walk(const json& p, Walk& w) {
  const std::string type = p.value("type", "");
  if (w.after_byte_level && type != "Sequence") {
    // Steps after ByteLevel would see its byte characters ('Ġ' for ' '), not the text.
    fail("{}: pre_tokenizer step '{}' after ByteLevel is not supported (ByteLevel must come last)",
         w.path, type);
  }
  if (type == "Sequence") {
    const json* list = member(p, "pretokenizers");
    if (!list || !list->is_array())
      fail("{}: pre_tokenizer Sequence without a 'pretokenizers' array", w.path);
    for (const json& q : *list) walk(q, w);
  } else if (type == "Split") {
    const json* pat = member(p, "pattern");
    std::string re;
    if (pat && member(*pat, "Regex")) {
      re = (*pat)["Regex"].get<std::string>();
    } else if (pat && member(*pat, "String")) {
      re = regex_escape((*pat)["String"].get<std::string>());
    } else {
      fail("{}: pre_tokenizer Split without a pattern", w.path);
    }
    const std::string behavior = p.value("behavior", "Isolated");
    const bool invert = p.value("invert", false);
    if (behavior == "Isolated" && !invert) {
      w.steps.push_back({re, false});
    } else if (behavior == "Removed" && invert) {
      w.steps.push_back({re, true});
    } else {
      fail(
          "{}: pre_tokenizer Split /{}/ with behavior '{}'{} is not supported (only Isolated, or "
          "Removed "
          "inverted over a pattern whose matches cover the text: llama.cpp's pre-tokenizer types "
          "split that way)",
          w.path, re, behavior, invert ? " inverted" : "");
    }
  } else if (type == "Digits") {
    w.steps.push_back({p.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)", false});
  } else if (type == "ByteLevel") {
    w.out.byte_level = true;
    w.out.byte_level_prefix_space = p.value("add_prefix_space", false);
    if (w.out.byte_level_prefix_space && !w.steps.empty()) {
      // Hugging Face would prefix every piece of the earlier splits; no llama.cpp type does.
      fail(
          "{}: pre_tokenizer ByteLevel with add_prefix_space after Split/Digits steps is not "
          "supported",
          w.path);
    }
    if (p.value("use_regex", true)) w.steps.push_back({kGpt2Regex, false});
    w.after_byte_level = true;
  } else if (type == "Metaspace") {
    w.out.metaspace = true;
    const std::string scheme =
        p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
    w.out.metaspace_prefix = scheme != "never";
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported", w.path, type);
  }
}

}  // namespace

HfPreTokenizer read_hf_pre_tokenizer(const json* pre_tokenizer, bool ignore_merges,
                                     const std::string& path) {
  Walk w{path, {}, {}, false};
  if (pre_tokenizer) walk(*pre_tokenizer, w);
  if (!w.out.byte_level) {
    if (!w.steps.empty()) fail("{}: pre_tokenizer splits text but has no ByteLevel step", path);
    return w.out;
  }
  if (w.out.metaspace) fail("{}: pre_tokenizer mixes ByteLevel with Metaspace", path);
  std::vector<std::string> patterns;
  for (const SplitStep& s : w.steps) patterns.push_back(s.regex);
  w.out.family = match_pre_family(patterns, ignore_merges);
  if (!w.out.family) {
    std::string list;
    for (const auto& p : patterns) list += (list.empty() ? "/" : ", /") + p + "/";
    fail("{}: pre_tokenizer splits [{}] match no supported llama.cpp pre-tokenizer type ({})", path,
         list, known_pre_families());
  }
  for (const SplitStep& s : w.steps) {
    if (s.keeps_only_matches && !w.out.family->matches_cover_text) {
      fail(
          "{}: pre_tokenizer Split /{}/ (Removed, inverted) drops the text between matches, which "
          "llama.cpp's "
          "'{}' keeps",
          path, s.regex, w.out.family->name);
    }
  }
  return w.out;
}

}  // namespace mcmoe::tokenizer::detail
