// Tokens (jinja_lex.h) → the tree of jinja_ast.h, by recursive descent with Jinja2's
// operator precedence (jinja2/parser.py).
#include <cctype>
#include <set>
#include <utility>

#include "core/error.h"
#include "template/jinja_ast.h"
#include "template/jinja_lex.h"

namespace mcmoe::jinja {

namespace {

// Nesting deeper than this is refused: each level costs the parser (and later the renderer)
// several stack frames, and a hostile template of 20,000 "(" overflowed the stack. Real chat
// templates nest a handful of levels.
constexpr int kMaxNesting = 200;
// An expression's tree is refused taller than this: chains built in loops ("1+1+...",
// "x|f|f|...", "a.b.b...") nest without the parser recursing, but rendering and destroying
// them recurse once per level.
constexpr int kMaxHeight = 1000;

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
      add(*c, parse_or());
      add(*c, std::move(e));
      if (accept_name("else")) {
        const Nesting nesting(*this);  // "a if b else c if d else ..." recurses here
        add(*c, expression());
      } else {
        add_optional(*c, nullptr);  // "a if b": undefined when b is false
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
    add(*t, std::move(first));
    while (accept_op(",")) {
      if (at_end() || is_op(")") || is_op("]") || is_op("}")) break;
      add(*t, expression());
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
        ExprPtr value = expression();
        e.height = std::max(e.height, value->height + 1);
        if (e.height > kMaxHeight)
          error(fmt::format("expression nested deeper than {} levels", kMaxHeight));
        e.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e.kwargs.empty()) error("a positional argument after a keyword argument");
        add(e, expression());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

 private:
  // Appends an argument, keeping the parent's height (kMaxHeight). The renderer reads every
  // one added here: null is refused now, not dereferenced later (crash-null-index was one).
  void add(Expr& parent, ExprPtr child) {
    if (!child) error("expected an expression");
    add_optional(parent, std::move(child));
  }
  // An argument that may be absent (a slice's bounds, a conditional's else): tested on use.
  void add_optional(Expr& parent, ExprPtr child) {
    if (child) {
      parent.height = std::max(parent.height, child->height + 1);
      if (parent.height > kMaxHeight)
        error(fmt::format("expression nested deeper than {} levels", kMaxHeight));
    }
    parent.args.push_back(std::move(child));
  }

  ExprPtr make(Expr::Kind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Kind::kBinary);
    e->name = std::move(op);
    add(*e, std::move(a));
    add(*e, std::move(b));
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
      const Nesting nesting(*this);  // "not not not ..." recurses here without parse_unary
      auto e = make(Expr::Kind::kUnary);
      e->name = "not";
      add(*e, parse_level(kNot));
      return e;
    }
    ExprPtr e = parse_level(level + 1);
    for (std::string op; !(op = take_operator(level_ops(level))).empty();) {
      e = binary(op, std::move(e), parse_level(level + 1));
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    const Nesting nesting(*this);  // parentheses, lists, dicts, calls and "- - -" recurse here
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::kUnary);
      e->name = t_[i_++].text;
      add(*e, parse_unary(false));
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
            add(*tuple, std::move(inner));
            while (accept_op(",")) {
              if (is_op(")")) break;
              add(*tuple, expression());
            }
            inner = std::move(tuple);
          }
          expect_op(")");
          return inner;
        }
        if (accept_op("[")) {
          auto list = make(Expr::Kind::kList);
          while (!is_op("]")) {
            add(*list, expression());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return list;
        }
        if (accept_op("{")) {
          auto dict = make(Expr::Kind::kDict);
          while (!is_op("}")) {
            add(*dict, expression());
            expect_op(":");
            add(*dict, expression());
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
          add(*a, std::move(e));
          auto idx = make(Expr::Kind::kLiteral);
          idx->value = t_[i_++].value;
          add(*a, std::move(idx));
        } else {
          a->name = take_name("an attribute name");
          add(*a, std::move(e));
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
        // x[] is a syntax error in Jinja, as in Python (an index needs an expression).
        if (!slice && !parts[0]) error("expected an index between '[' and ']'");
        expect_op("]");
        auto s = make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex);
        add(*s, std::move(e));
        if (slice) {
          for (ExprPtr& part : parts) add_optional(*s, std::move(part));
        } else {
          add(*s, std::move(parts[0]));
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
    add(*c, std::move(f));
    call_args(*c);
    return c;
  }

  ExprPtr filter_expr(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        auto f = make(Expr::Kind::kFilter);
        f->name = take_name("a filter name");
        while (accept_op(".")) f->name += "." + take_name("a filter name");
        add(*f, std::move(e));
        if (accept_op("(")) call_args(*f);
        e = std::move(f);
      } else if (accept_name("is")) {
        auto t = make(Expr::Kind::kTest);
        t->negated = accept_name("not");
        t->name = take_name("a test name");
        add(*t, std::move(e));
        if (accept_op("(")) {
          call_args(*t);
        } else if (starts_test_argument()) {
          add(*t, postfix(primary()));
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
    // Blocks inside blocks recurse here (see kMaxNesting).
    if (++depth_ > kMaxNesting) {
      fail("{}: line {}: blocks nested deeper than {} levels", name_, last_line_, kMaxNesting);
    }
    struct Leave {
      int& depth;
      ~Leave() { --depth; }
    } leave{depth_};
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
      ++loop_depth_;
      const std::string end = parse_body(n->body, {"else", "endfor"});
      --loop_depth_;
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
      // A macro's body is a function of its own: no loop around the definition is around it.
      const int outer_loops = std::exchange(loop_depth_, 0);
      body_until(n->body, "endmacro");
      loop_depth_ = outer_loops;
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
      // Checked here, as Jinja does when compiling: outside a for body it escaped render() as
      // a non-Error exception (std::terminate; fuzz/regressions/template/crash-break-*).
      if (loop_depth_ == 0) fail("{}: line {}: '{}' outside of a for loop", name_, line, word);
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
  int depth_ = 0;
  int loop_depth_ = 0;  // for bodies around the statement being parsed, within its macro
  std::unique_ptr<ExprParser> pending_;
};

}  // namespace

NodePtr parse_template(const std::string& source, const std::string& name) {
  return Parser(split_segments(source, name), name).parse();
}

}  // namespace mcmoe::jinja
