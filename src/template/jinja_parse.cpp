// Template text → segments (with Jinja's whitespace control and transformers' trim_blocks /
// lstrip_blocks) → tokens → the tree of jinja_ast.h, by recursive descent with Jinja2's
// operator precedence (jinja2/parser.py).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "template/jinja_ast.h"

namespace mcmoe::jinja {

namespace {

struct Segment {
  enum class Kind { kText, kOutput, kStatement } kind;
  std::string content;
  int line;
};

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

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  Value value;
};

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

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, const std::string& name, int line)
      : t_(std::move(tokens)), name_(name), line_(line) {}

  bool at_end() const { return t_[i_].kind == Token::Kind::kEnd; }
  bool is_op(const char* op) const { return t_[i_].kind == Token::Kind::kOp && t_[i_].text == op; }
  bool is_name(const char* n) const {
    return t_[i_].kind == Token::Kind::kName && t_[i_].text == n;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "'");
    ++i_;
  }
  std::string take_name(const char* what) {
    if (t_[i_].kind != Token::Kind::kName) error(std::string("expected ") + what);
    return t_[i_++].text;
  }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++i_;
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    ++i_;
    return true;
  }
  void expect_end() {
    if (!at_end()) error("unexpected '" + describe() + "'");
  }
  [[noreturn]] void error(const std::string& what) const {
    fail("{}: line {}: {} (at '{}')", name_, line_, what, describe());
  }
  std::string describe() const {
    const Token& t = t_[i_];
    if (t.kind == Token::Kind::kEnd) return "end of tag";
    if (t.kind == Token::Kind::kString) return t.value.repr();
    return t.text;
  }

  // expression := condition [if ... else ...]
  ExprPtr expression(bool with_condition = true) {
    ExprPtr e = parse_or();
    while (with_condition && is_name("if")) {
      ++i_;
      auto c = make(Expr::Kind::kCondition);
      c->args.push_back(parse_or());
      c->args.insert(c->args.begin() + 1, std::move(e));
      if (accept_name("else")) {
        c->args.push_back(expression());
      } else {
        c->args.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  // A tuple without parentheses (for targets and "set a, b = ...").
  ExprPtr tuple_or_expression() {
    ExprPtr first = expression();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::kTuple);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (at_end() || is_op(")") || is_op("]") || is_op("}")) break;
      t->args.push_back(expression());
    }
    return t;
  }

  std::vector<std::string> targets() {
    std::vector<std::string> names;
    const bool paren = accept_op("(");
    names.push_back(take_name("a variable name"));
    while (accept_op(",")) names.push_back(take_name("a variable name"));
    if (paren) expect_op(")");
    return names;
  }

  // Call arguments after "(": positional, then keyword (name=value).
  void call_args(Expr& e) {
    while (!is_op(")")) {
      if (t_[i_].kind == Token::Kind::kName && t_[i_ + 1].kind == Token::Kind::kOp &&
          t_[i_ + 1].text == "=") {
        std::string key = t_[i_].text;
        i_ += 2;
        e.kwargs.emplace_back(std::move(key), expression());
      } else {
        if (!e.kwargs.empty()) error("a positional argument after a keyword argument");
        e.args.push_back(expression());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

 private:
  ExprPtr make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Kind::kBinary);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  // Binary operators by precedence, loosest first (jinja2/parser.py): or, and, not (unary),
  // comparisons, + -, ~, * / // %, **; each level is left-associative over the next.
  enum Level { kOr, kAnd, kNot, kCompare, kAdd, kConcat, kMul, kPow, kUnaryLevel };
  static const std::vector<const char*>& level_ops(int level) {
    static const std::vector<const char*> kOps[] = {
        {"or"},
        {"and"},
        {},
        {"==", "!=", "<=", ">=", "<", ">", "in", "not in"},
        {"+", "-"},
        {"~"},
        {"*", "/", "//", "%"},
        {"**"}};
    return kOps[level];
  }
  // The operator at the cursor, if it is one of `ops` (consumed); "" otherwise.
  std::string take_operator(const std::vector<const char*>& ops) {
    for (const char* op : ops) {
      const std::string o = op;
      if (o == "not in") {
        if (is_name("not") && t_[i_ + 1].kind == Token::Kind::kName && t_[i_ + 1].text == "in") {
          i_ += 2;
          return o;
        }
      } else if (std::isalpha(static_cast<unsigned char>(o[0])) ? accept_name(op) : accept_op(op)) {
        return o;
      }
    }
    return "";
  }
  ExprPtr parse_or() { return parse_level(kOr); }
  ExprPtr parse_level(int level) {
    if (level == kUnaryLevel) return parse_unary(true);
    if (level == kNot && accept_name("not")) {
      auto e = make(Expr::Kind::kUnary);
      e->name = "not";
      e->args.push_back(parse_level(kNot));
      return e;
    }
    ExprPtr e = parse_level(level + 1);
    for (std::string op; !(op = take_operator(level_ops(level))).empty();) {
      e = binary(op, std::move(e), parse_level(level + 1));
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::kUnary);
      e->name = t_[i_++].text;
      e->args.push_back(parse_unary(false));
    } else {
      e = postfix(primary());
    }
    return with_filter ? filter_expr(std::move(e)) : std::move(e);
  }

  ExprPtr primary() {
    const Token& t = t_[i_];
    switch (t.kind) {
      case Token::Kind::kString: {
        // Adjacent string literals concatenate, as in Python.
        std::string s;
        while (t_[i_].kind == Token::Kind::kString) s += t_[i_++].value.str_ref();
        auto e = make(Expr::Kind::kLiteral);
        e->value = Value(s);
        return e;
      }
      case Token::Kind::kInt:
      case Token::Kind::kFloat: {
        auto e = make(Expr::Kind::kLiteral);
        e->value = t.value;
        ++i_;
        return e;
      }
      case Token::Kind::kName: {
        const std::string n = t.text;
        ++i_;
        auto e = make(Expr::Kind::kLiteral);
        if (n == "true" || n == "True") {
          e->value = Value(true);
        } else if (n == "false" || n == "False") {
          e->value = Value(false);
        } else if (n == "none" || n == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = n;
        }
        return e;
      }
      case Token::Kind::kOp:
        if (accept_op("(")) {
          if (accept_op(")")) return make(Expr::Kind::kTuple);
          ExprPtr inner = expression();
          if (is_op(",")) {
            auto tuple = make(Expr::Kind::kTuple);
            tuple->args.push_back(std::move(inner));
            while (accept_op(",")) {
              if (is_op(")")) break;
              tuple->args.push_back(expression());
            }
            inner = std::move(tuple);
          }
          expect_op(")");
          return inner;
        }
        if (accept_op("[")) {
          auto list = make(Expr::Kind::kList);
          while (!is_op("]")) {
            list->args.push_back(expression());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return list;
        }
        if (accept_op("{")) {
          auto dict = make(Expr::Kind::kDict);
          while (!is_op("}")) {
            dict->args.push_back(expression());
            expect_op(":");
            dict->args.push_back(expression());
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return dict;
        }
        break;
      case Token::Kind::kEnd:
        break;
    }
    error("expected an expression");
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (accept_op(".")) {
        auto a = make(Expr::Kind::kAttr);
        if (t_[i_].kind == Token::Kind::kInt) {  // x.0: an index
          a->kind = Expr::Kind::kIndex;
          a->args.push_back(std::move(e));
          auto idx = make(Expr::Kind::kLiteral);
          idx->value = t_[i_++].value;
          a->args.push_back(std::move(idx));
        } else {
          a->name = take_name("an attribute name");
          a->args.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (accept_op("[")) {
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
          } else {
            break;
          }
        }
        expect_op("]");
        auto s = make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex);
        s->args.push_back(std::move(e));
        s->args.push_back(std::move(parts[0]));
        if (slice) {
          s->args.push_back(std::move(parts[1]));
          s->args.push_back(std::move(parts[2]));
        }
        e = std::move(s);
      } else if (accept_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // f(...) after its "(".
  ExprPtr call(ExprPtr f) {
    auto c = make(Expr::Kind::kCall);
    c->args.push_back(std::move(f));
    call_args(*c);
    return c;
  }

  ExprPtr filter_expr(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        auto f = make(Expr::Kind::kFilter);
        f->name = take_name("a filter name");
        while (accept_op(".")) f->name += "." + take_name("a filter name");
        f->args.push_back(std::move(e));
        if (accept_op("(")) call_args(*f);
        e = std::move(f);
      } else if (accept_name("is")) {
        auto t = make(Expr::Kind::kTest);
        t->negated = accept_name("not");
        t->name = take_name("a test name");
        t->args.push_back(std::move(e));
        if (accept_op("(")) {
          call_args(*t);
        } else if (starts_test_argument()) {
          t->args.push_back(postfix(primary()));
        }
        e = std::move(t);
      } else if (accept_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // "x is divisibleby 3", "x is sameas none": one argument without parentheses.
  bool starts_test_argument() const {
    const Token& t = t_[i_];
    if (t.kind == Token::Kind::kString || t.kind == Token::Kind::kInt ||
        t.kind == Token::Kind::kFloat)
      return true;
    if (t.kind == Token::Kind::kName) {
      static const std::set<std::string> kStop = {"else", "or", "and", "if", "is", "in", "not"};
      return !kStop.count(t.text);
    }
    return t.kind == Token::Kind::kOp && (t.text == "[" || t.text == "{");
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const std::string& name_;
  int line_;
};

class Parser {
 public:
  Parser(std::vector<Segment> segs, const std::string& name)
      : segs_(std::move(segs)), name_(name) {}

  NodePtr parse() {
    auto root = std::make_unique<Node>();
    root->kind = Node::Kind::kRoot;
    std::string end = parse_body(root->body, {});
    if (!end.empty()) fail("{}: line {}: unexpected {{% {} %}}", name_, last_line_, end);
    return root;
  }

 private:
  // Parses nodes into `body` until a statement whose first word is in `ends`; returns that
  // word (its tag's tokens are left in pending_), or "" at the end of the template.
  std::string parse_body(Body& body, const std::set<std::string>& ends) {
    while (pos_ < segs_.size()) {
      const Segment& seg = segs_[pos_++];
      last_line_ = seg.line;
      if (seg.kind == Segment::Kind::kText) {
        auto n = node(Node::Kind::kText, seg.line);
        n->text = seg.content;
        body.push_back(std::move(n));
        continue;
      }
      ExprParser p(tokenize(seg.content, name_, seg.line), name_, seg.line);
      if (seg.kind == Segment::Kind::kOutput) {
        auto n = node(Node::Kind::kOutput, seg.line);
        n->expr = p.tuple_or_expression();
        p.expect_end();
        body.push_back(std::move(n));
        continue;
      }
      const std::string word = p.take_name("a statement name");
      if (ends.count(word)) {
        pending_ = std::make_unique<ExprParser>(std::move(p));
        return word;
      }
      body.push_back(statement(word, p, seg.line));
    }
    if (!ends.empty()) {
      std::string list;
      for (const auto& e : ends) list += (list.empty() ? "" : " or ") + e;
      fail("{}: line {}: the template ends before {{% {} %}}", name_, last_line_, list);
    }
    return "";
  }

  std::unique_ptr<ExprParser> take_pending() { return std::move(pending_); }
  // A body that must end with {% end %} (a tag with nothing else in it).
  void body_until(Body& body, const char* end) {
    parse_body(body, {end});
    take_pending()->expect_end();
  }

  NodePtr statement(const std::string& word, ExprParser& p, int line) {
    if (word == "if") {
      auto n = node(Node::Kind::kIf, line);
      ExprPtr cond = p.expression();
      p.expect_end();
      for (;;) {
        Body b;
        const std::string end = parse_body(b, {"elif", "else", "endif"});
        n->branches.emplace_back(std::move(cond), std::move(b));
        auto tag = take_pending();
        if (end == "elif") {
          cond = tag->expression();
          tag->expect_end();
          continue;
        }
        tag->expect_end();
        if (end == "else") {
          body_until(n->else_body, "endif");
        }
        return n;
      }
    }
    if (word == "for") {
      auto n = node(Node::Kind::kFor, line);
      n->targets = p.targets();
      if (!p.accept_name("in")) p.error("expected 'in'");
      n->expr = p.expression(false);
      if (p.accept_name("if")) n->filter = p.expression(false);
      p.accept_name("recursive");
      p.expect_end();
      const std::string end = parse_body(n->body, {"else", "endfor"});
      take_pending()->expect_end();
      if (end == "else") {
        body_until(n->else_body, "endfor");
      }
      return n;
    }
    if (word == "set") {
      auto n = node(Node::Kind::kSet, line);
      std::string first = p.take_name("a variable name");
      if (p.accept_op(".")) {
        n->targets.push_back(first);
        n->attr = p.take_name("an attribute name");
      } else {
        n->targets.push_back(first);
        while (p.accept_op(",")) n->targets.push_back(p.take_name("a variable name"));
      }
      if (p.accept_op("=")) {
        n->expr = p.tuple_or_expression();
        p.expect_end();
        return n;
      }
      p.expect_end();  // {% set x %}...{% endset %}
      body_until(n->body, "endset");
      return n;
    }
    if (word == "macro") {
      auto n = node(Node::Kind::kMacro, line);
      n->text = p.take_name("a macro name");
      p.expect_op("(");
      while (!p.is_op(")")) {
        std::string param = p.take_name("a parameter name");
        ExprPtr def;
        if (p.accept_op("=")) def = p.expression();
        n->params.emplace_back(std::move(param), std::move(def));
        if (!p.accept_op(",")) break;
      }
      p.expect_op(")");
      p.expect_end();
      body_until(n->body, "endmacro");
      return n;
    }
    if (word == "filter") {
      auto n = node(Node::Kind::kFilterBlock, line);
      auto f = std::make_unique<Expr>();
      f->kind = Expr::Kind::kFilter;
      f->line = line;
      f->name = p.take_name("a filter name");
      f->args.push_back(nullptr);  // the body's output, supplied when rendering
      if (p.accept_op("(")) p.call_args(*f);
      p.expect_end();
      n->expr = std::move(f);
      body_until(n->body, "endfilter");
      return n;
    }
    if (word == "break" || word == "continue") {
      p.expect_end();
      return node(word == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, line);
    }
    if (word == "generation") {  // transformers' marker of assistant text: renders its body
      p.expect_end();
      auto n = node(Node::Kind::kIf, line);
      auto yes = std::make_unique<Expr>();
      yes->kind = Expr::Kind::kLiteral;
      yes->value = Value(true);
      Body b;
      body_until(b, "endgeneration");
      n->branches.emplace_back(std::move(yes), std::move(b));
      return n;
    }
    fail("{}: line {}: unknown statement '{}'", name_, line, word);
  }

  NodePtr node(Node::Kind k, int line) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = line;
    return n;
  }

  std::vector<Segment> segs_;
  size_t pos_ = 0;
  const std::string& name_;
  int last_line_ = 1;
  std::unique_ptr<ExprParser> pending_;
};

}  // namespace

NodePtr parse_template(const std::string& source, const std::string& name) {
  return Parser(split_segments(source, name), name).parse();
}

}  // namespace mcmoe::jinja
