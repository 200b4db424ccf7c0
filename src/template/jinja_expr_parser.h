#pragma once
// Inside template/: the expression half of the parser (jinja_parse.cpp parses statements and
// hands each tag's tokens here): recursive descent with Jinja2's operator precedence
// (jinja2/parser.py), each node's height and the recursion depth bounded.
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "template/jinja_ast.h"
#include "template/jinja_lex.h"

namespace mcmoe::jinja {

// Nesting deeper than this is refused: each level costs the parser (and later the renderer)
// several stack frames, and a hostile template of 20,000 "(" overflowed the stack. Real chat
// templates nest a handful of levels.
inline constexpr int kMaxNesting = 200;
// An expression's tree is refused taller than this: chains built in loops ("1+1+...",
// "x|f|f|...", "a.b.b...") nest without the parser recursing, but rendering and destroying
// them recurse once per level.
inline constexpr int kMaxHeight = 1000;

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
  ExprPtr expression(bool with_condition = true);

  // A tuple without parentheses (for targets and "set a, b = ...").
  ExprPtr tuple_or_expression();

  std::vector<std::string> targets();

  // Call arguments after "(": positional, then keyword (name=value).
  void call_args(Expr& e);

 private:
  // Appends an argument, keeping the parent's height (kMaxHeight). The renderer reads every
  // one added here: null is refused now, not dereferenced later (crash-null-index was one).
  void add(Expr& parent, ExprPtr child);
  // An argument that may be absent (a slice's bounds, a conditional's else): tested on use.
  void add_optional(Expr& parent, ExprPtr child);

  ExprPtr make(Expr::Kind k);
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b);

  // Binary operators by precedence, loosest first (jinja2/parser.py): or, and, not (unary),
  // comparisons, + -, ~, * / // %, **; each level is left-associative over the next.
  enum Level { kOr, kAnd, kNot, kCompare, kAdd, kConcat, kMul, kPow, kUnaryLevel };
  static const std::vector<const char*>& level_ops(int level);
  // The operator at the cursor, if it is one of `ops` (consumed); "" otherwise.
  std::string take_operator(const std::vector<const char*>& ops);
  ExprPtr parse_or() { return parse_level(kOr); }
  ExprPtr parse_level(int level);
  ExprPtr parse_unary(bool with_filter);

  ExprPtr primary();

  ExprPtr postfix(ExprPtr e);

  // f(...) after its "(".
  ExprPtr call(ExprPtr f);

  ExprPtr filter_expr(ExprPtr e);

  // "x is divisibleby 3", "x is sameas none": one argument without parentheses.
  bool starts_test_argument() const;

  std::vector<Token> t_;
  size_t i_ = 0;
  const std::string& name_;
  int line_;
  int depth_ = 0;

  struct Nesting {
    explicit Nesting(ExprParser& p) : p(p) {
      if (++p.depth_ > kMaxNesting)
        p.error(fmt::format("expression nested deeper than {} levels", kMaxNesting));
    }
    ~Nesting() { --p.depth_; }
    ExprParser& p;
  };
};

}  // namespace mcmoe::jinja
