#pragma once
// The renderer of a parsed template (jinja_render.cpp: statements and expressions;
// jinja_builtins.cpp: methods of str / dict / list, filters and tests). Internal to
// src/template: the public surface is jinja.h.
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "template/jinja.h"
#include "template/jinja_ast.h"

namespace mcmoe::jinja::detail {

struct BreakLoop {};
struct ContinueLoop {};

class Renderer {
 public:
  Renderer(const std::string& name, const Template::Options& o, const Value& context)
      : name_(name), o_(o) {
    frames_.emplace_back();
    if (context.is_object()) {
      for (const auto& [k, v] : context.fields()) frames_.back()[k] = v;
    }
    install_globals();
  }

  std::string run(const Node& root) {
    exec_body(root.body);
    return std::move(out_);
  }

 private:
  using Frame = std::map<std::string, Value>;

  [[noreturn]] void error(int line, const std::string& what) const {
    fail("{}: line {}: {}", name_, line, what);
  }

  void step(int line) {
    if (++steps_ > o_.max_steps)
      error(line, fmt::format("more than {} steps: giving up", o_.max_steps));
  }

  void emit(const std::string& s, int line) {
    out_ += s;
    if (out_.size() > o_.max_output)
      error(line, fmt::format("output beyond {} bytes: giving up", o_.max_output));
  }

  Value lookup(const std::string& n) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      const auto f = it->find(n);
      if (f != it->end()) return f->second;
    }
    return Value();
  }
  void assign(const std::string& n, Value v) { frames_.back()[n] = std::move(v); }

  void install_globals();

  // ---- statements ----

  void exec_body(const Body& body) {
    for (const auto& n : body) exec(*n);
  }

  void exec(const Node& n);

  // The output of `body` rendered on its own (block set, filter block, macro call). out_ is
  // restored however the body ends: a {% break %} inside a filter block leaves it for the
  // enclosing loop, whose output so far must survive (Jinja drops only the block's buffer).
  std::string capture(const Body& body);

  void assign_targets(const std::vector<std::string>& targets, Value v, int line);

  void exec_for(const Node& n);

  void define_macro(const Node& n);

  // ---- expressions ----

  Array iterate(const Value& v, int line);

  Value eval(const Expr& e);

  // Every expression the renderer reads goes through these two. The parser fills each one
  // that is not optional (jinja_parse.cpp's add(); optional: a slice's bounds, a
  // conditional's else, a macro parameter's default, a for loop's filter, the expression of
  // a block set, which their readers test), so a missing one is a parser defect: refused
  // naming the line, never dereferenced (the fuzzer found null ones: UBSan, reference
  // binding to null; fuzz/regressions/template/crash-null-index).
  const Expr& required(const ExprPtr& e, int line) const {
    if (!e) error(line, "an expression is missing here");
    return *e;
  }
  const Expr& arg(const Expr& e, size_t i) const {
    if (i >= e.args.size()) error(e.line, "an expression is missing here");
    return required(e.args[i], e.line);
  }

  static std::string describe(const Expr& e) {
    return e.kind == Expr::Kind::kName || e.kind == Expr::Kind::kAttr ? e.name : "expression";
  }

  CallArgs call_args(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(arg(e, i)));
    for (const auto& [k, v] : e.kwargs) a.keywords.emplace_back(k, eval(required(v, e.line)));
    return a;
  }

  Value binary(const Expr& e);

  Value repeat(const Value& v, int64_t n);

  bool contains(const Value& haystack, const Value& needle, int line);

  static bool has_key(const Value& obj, const std::string& key) {
    return std::any_of(obj.fields().begin(), obj.fields().end(),
                       [&](const auto& kv) { return kv.first == key; });
  }

  int compare(const Value& a, const Value& b, int line);

  Value attribute(const Value& v, const std::string& name, int line);

  Value index(const Value& v, const Value& key, int line);

  Value slice(const Value& v, const Value& start_v, const Value& stop_v, const Value& step_v,
              int line);

  // ---- methods of str, dict and list ----

  Value method(const Value& self, const std::string& name, int line) {
    return Value::bound_method(
        [this, self, name, line](const CallArgs& a) { return call_method(self, name, a, line); },
        self);
  }

  static std::string strip_chars(const CallArgs& a) {
    const Value* c = a.get("chars", 0);
    return c && c->is_string() ? c->str_ref() : std::string(" \t\n\r\f\v");
  }

  Value call_method(const Value& self, const std::string& name, const CallArgs& a, int line);

  // ---- filters ----

  Value filter(const std::string& name, const Value& v, const CallArgs& a, int line);

  static Value generator(Array items) {
    Value g = Value::array(std::move(items));
    g.mark_generator();
    return g;
  }

  // "a.b.0": attribute_path as Jinja's attribute= arguments read it.
  Value attribute_path(const Value& v, const std::string& path, int line);

  // ---- tests ----

  bool test(const std::string& name, const Value& v, const CallArgs& a, int line);

  const std::string& name_;
  const Template::Options& o_;
  std::vector<Frame> frames_;
  std::string out_;
  int64_t steps_ = 0;
  static constexpr int kMaxMacroDepth = 100;
  // Fails when a list would hold more than max_steps items.
  void check_items(size_t n, int line) const;
  int macro_depth_ = 0;  // macro calls in progress
};

}  // namespace mcmoe::jinja::detail
