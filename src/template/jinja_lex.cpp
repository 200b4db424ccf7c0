#include "template/jinja_lex.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace mcmoe::jinja {

namespace {

int count_lines(const std::string& s, size_t begin, size_t end) {
  int n = 0;
  for (size_t i = begin; i < end && i < s.size(); ++i) n += s[i] == '\n';
  return n;
}

// The tag's closing delimiter, skipping string literals and open brackets inside expression
// and block tags (as Jinja's lexer does: "}}" in a string or after "{'b': {}" does not close).
size_t find_close(const std::string& src, size_t from, const std::string& close, char kind) {
  if (kind == '#') return src.find(close, from);
  char quote = 0;
  int depth = 0;
  for (size_t i = from; i + 1 < src.size(); ++i) {
    const char c = src[i];
    if (quote) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (depth == 0 && src.compare(i, close.size(), close) == 0) {
      return i;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string::npos;
}

}  // namespace

std::vector<Segment> split_segments(const std::string& src, const std::string& name) {
  std::vector<Segment> out;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false;    // the previous tag ended with "-"
  bool trim_newline = false;  // the previous tag was a block / comment (trim_blocks)
  while (pos <= src.size()) {
    size_t open = std::string::npos;
    for (size_t p = src.find('{', pos); p != std::string::npos && p + 1 < src.size();
         p = src.find('{', p + 1)) {
      if (src[p + 1] == '{' || src[p + 1] == '%' || src[p + 1] == '#') {
        open = p;
        break;
      }
    }
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    const int text_line = line;
    line += count_lines(text, 0, text.size());
    if (strip_next) {
      size_t k = 0;
      while (k < text.size() && std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      text.erase(0, k);
    } else if (trim_newline) {
      if (text.rfind("\r\n", 0) == 0) {
        text.erase(0, 2);
      } else if (!text.empty() && text[0] == '\n') {
        text.erase(0, 1);
      }
    }
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::Kind::kText, text, text_line});
      break;
    }
    const char kind = src[open + 1];
    const char modifier = open + 2 < src.size() ? src[open + 2] : '\0';
    if (modifier == '-') {
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.pop_back();
    } else if (kind != '{' && modifier != '+') {
      // lstrip_blocks: spaces and tabs from the start of a line up to a block or comment
      // (judged on the source, as Jinja's lexer does).
      size_t b = open;
      while (b > pos && (src[b - 1] == ' ' || src[b - 1] == '\t')) --b;
      if (b == 0 || src[b - 1] == '\n') text.erase(text.size() - std::min(text.size(), open - b));
    }
    if (!text.empty()) out.push_back({Segment::Kind::kText, text, text_line});
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t body = open + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
    const size_t end = find_close(src, body, close, kind);
    if (end == std::string::npos)
      fail("{}: line {}: '{{{}' is never closed by '{}'", name, line, kind, close);
    size_t content_end = end;
    strip_next = false;
    trim_newline = false;
    if (content_end > body && src[content_end - 1] == '-') {
      strip_next = true;
      --content_end;
    } else if (content_end > body && src[content_end - 1] == '+') {
      --content_end;  // keeps the newline: no trim_blocks
    } else {
      trim_newline = kind != '{';
    }
    const std::string content = src.substr(body, content_end - body);
    if (kind == '%') {
      // {% raw %}...{% endraw %}: the text between is kept verbatim.
      std::string word = content;
      while (!word.empty() && std::isspace(static_cast<unsigned char>(word.front())))
        word.erase(0, 1);
      while (!word.empty() && std::isspace(static_cast<unsigned char>(word.back())))
        word.pop_back();
      if (word == "raw") {
        size_t search = end + 2, raw_end = std::string::npos, tag_start = 0;
        while ((tag_start = src.find("{%", search)) != std::string::npos) {
          size_t k = tag_start + 2;
          if (k < src.size() && (src[k] == '-' || src[k] == '+')) ++k;
          while (k < src.size() && std::isspace(static_cast<unsigned char>(src[k]))) ++k;
          if (src.compare(k, 6, "endraw") == 0) {
            raw_end = tag_start;
            break;
          }
          search = tag_start + 2;
        }
        if (raw_end == std::string::npos)
          fail("{}: line {}: {{% raw %}} without {{% endraw %}}", name, line);
        std::string raw = src.substr(end + 2, raw_end - end - 2);
        if (trim_newline && !raw.empty() && raw[0] == '\n') raw.erase(0, 1);
        if (src[raw_end + 2] == '-') {
          while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back())))
            raw.pop_back();
        }
        out.push_back({Segment::Kind::kText, raw, line});
        line += count_lines(src, open, src.find("%}", raw_end) + 2);
        const size_t raw_close = src.find("%}", raw_end);
        if (raw_close == std::string::npos)
          fail("{}: line {}: {{% endraw is never closed", name, line);
        strip_next = src[raw_close - 1] == '-';
        trim_newline = !strip_next && src[raw_close - 1] != '+';
        pos = raw_close + 2;
        continue;
      }
    }
    if (kind == '{') out.push_back({Segment::Kind::kOutput, content, line});
    if (kind == '%') out.push_back({Segment::Kind::kStatement, content, line});
    line += count_lines(src, open, end + 2);
    pos = end + 2;
  }
  return out;
}

std::vector<Token> tokenize(const std::string& s, const std::string& name, int line) {
  std::vector<Token> out;
  size_t i = 0;
  static const std::vector<std::string> ops = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                                               "/",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                               "{",  "}",  ",",  ":",  ".",  "|",  "="};
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Kind::kName, s.substr(i, j - i), {}});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          is_float = true;
          j = k;
          while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        }
      }
      std::string num;
      for (size_t k = i; k < j; ++k) {
        if (s[k] != '_') num += s[k];
      }
      if (is_float) {
        out.push_back({Token::Kind::kFloat, num, Value(std::strtod(num.c_str(), nullptr))});
      } else {
        out.push_back({Token::Kind::kInt, num,
                       Value(static_cast<int64_t>(std::strtoll(num.c_str(), nullptr, 10)))});
      }
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          v += s[j];
          continue;
        }
        const char e = s[++j];
        switch (e) {
          case 'n':
            v += '\n';
            break;
          case 't':
            v += '\t';
            break;
          case 'r':
            v += '\r';
            break;
          case '0':
            v += '\0';
            break;
          case '\\':
            v += '\\';
            break;
          case '\'':
            v += '\'';
            break;
          case '"':
            v += '"';
            break;
          case '\n':
            break;  // a backslash-newline continues the string
          case 'u':
          case 'x': {
            const int len = e == 'u' ? 4 : 2;
            if (j + len >= s.size()) fail("{}: line {}: a truncated \\{} escape", name, line, e);
            const uint32_t cp =
                static_cast<uint32_t>(std::strtoul(s.substr(j + 1, len).c_str(), nullptr, 16));
            j += len;
            if (cp < 0x80) {
              v += static_cast<char>(cp);
            } else if (cp < 0x800) {
              v += static_cast<char>(0xc0 | (cp >> 6));
              v += static_cast<char>(0x80 | (cp & 0x3f));
            } else {
              v += static_cast<char>(0xe0 | (cp >> 12));
              v += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
              v += static_cast<char>(0x80 | (cp & 0x3f));
            }
            break;
          }
          default:
            v += '\\';
            v += e;
        }
      }
      if (j >= s.size()) fail("{}: line {}: a string literal is never closed", name, line);
      out.push_back({Token::Kind::kString, "", Value(v)});
      i = j + 1;
      continue;
    }
    bool matched = false;
    for (const auto& op : ops) {
      if (s.compare(i, op.size(), op) == 0) {
        out.push_back({Token::Kind::kOp, op, {}});
        i += op.size();
        matched = true;
        break;
      }
    }
    if (!matched) fail("{}: line {}: unexpected character '{}'", name, line, c);
  }
  out.push_back({Token::Kind::kEnd, "", {}});
  return out;
}

}  // namespace mcmoe::jinja
