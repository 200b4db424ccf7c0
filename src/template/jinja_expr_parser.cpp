// Expressions of a tag's tokens → the Expr tree of jinja_ast.h (jinja_expr_parser.h).
#include "template/jinja_expr_parser.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace mcmoe::jinja {

ExprPtr ExprParser::expression(bool with_condition) {
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

ExprPtr ExprParser::tuple_or_expression() {
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

std::vector<std::string> ExprParser::targets() {
  std::vector<std::string> names;
  const bool paren = accept_op("(");
  names.push_back(take_name("a variable name"));
  while (accept_op(",")) names.push_back(take_name("a variable name"));
  if (paren) expect_op(")");
  return names;
}

void ExprParser::call_args(Expr& e) {
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

void ExprParser::add(Expr& parent, ExprPtr child) {
  if (!child) error("expected an expression");
  add_optional(parent, std::move(child));
}

void ExprParser::add_optional(Expr& parent, ExprPtr child) {
  if (child) {
    parent.height = std::max(parent.height, child->height + 1);
    if (parent.height > kMaxHeight)
      error(fmt::format("expression nested deeper than {} levels", kMaxHeight));
  }
  parent.args.push_back(std::move(child));
}

ExprPtr ExprParser::make(Expr::Kind k) {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->line = line_;
  return e;
}

ExprPtr ExprParser::binary(std::string op, ExprPtr a, ExprPtr b) {
  auto e = make(Expr::Kind::kBinary);
  e->name = std::move(op);
  add(*e, std::move(a));
  add(*e, std::move(b));
  return e;
}

const std::vector<const char*>& ExprParser::level_ops(int level) {
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

std::string ExprParser::take_operator(const std::vector<const char*>& ops) {
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

ExprPtr ExprParser::parse_level(int level) {
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

ExprPtr ExprParser::parse_unary(bool with_filter) {
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

ExprPtr ExprParser::primary() {
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

ExprPtr ExprParser::postfix(ExprPtr e) {
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

ExprPtr ExprParser::call(ExprPtr f) {
  auto c = make(Expr::Kind::kCall);
  add(*c, std::move(f));
  call_args(*c);
  return c;
}

ExprPtr ExprParser::filter_expr(ExprPtr e) {
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

bool ExprParser::starts_test_argument() const {
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

}  // namespace mcmoe::jinja
