// Tokens (jinja_lex.h) → the tree of jinja_ast.h: statements and the template's nesting here,
// expressions in jinja_expr_parser.cpp, by recursive descent after jinja2/parser.py.
#include <cctype>
#include <set>
#include <utility>

#include "core/error.h"
#include "template/jinja_ast.h"
#include "template/jinja_expr_parser.h"
#include "template/jinja_lex.h"

namespace mcmoe::jinja {

namespace {

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
