// Evaluation of the parsed template with Jinja2's semantics where chat templates rely on them:
// undefined variables (print as "", iterate as empty, fail on attribute access), Python's
// truthiness and operators, scoped loops (assignments inside a loop body stay there, hence
// namespace()), macros with their own scope.
//
// Filters: abs, capitalize, count, default (d), dictsort, first, float, indent, int, items,
// join, last, length, list, lower, map, max, min, reject, rejectattr, replace, reverse,
// round, safe, select, selectattr, sort, string, sum, title, tojson, trim, unique, upper,
// wordcount. Tests: boolean, callable, defined, divisibleby, eq (equalto, ==), even, false,
// float, ge, gt, in, integer, iterable, le, lower, lt, mapping, ne, none, number, odd,
// sameas, sequence, string, true, undefined, upper. Methods: str (strip, lstrip, rstrip,
// split, rsplit, splitlines, startswith, endswith, upper, lower, title, capitalize, replace,
// find, count, join, format_map-free format with {}), dict (items, keys, values, get), list
// (index, count). Globals: range, namespace, dict, raise_exception, strftime_now.
#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "template/jinja.h"
#include "template/jinja_ast.h"

namespace mcmoe::jinja {

namespace {

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

  void install_globals() {
    Frame& g = frames_.front();
    g["range"] = Value::function([this](const CallArgs& a) {
      int64_t start = 0, stop = 0, stepv = 1;
      if (a.positional.size() == 1) {
        stop = a.positional[0].as_int();
      } else if (a.positional.size() >= 2) {
        start = a.positional[0].as_int();
        stop = a.positional[1].as_int();
        if (a.positional.size() > 2) stepv = a.positional[2].as_int();
      }
      if (stepv == 0) fail("{}: range() step must not be zero", name_);
      Array out;
      for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
        out.push_back(Value(i));
        if (static_cast<int64_t>(out.size()) > o_.max_steps) fail("{}: range() too long", name_);
      }
      return Value::array(std::move(out));
    });
    g["namespace"] = Value::function([](const CallArgs& a) {
      Value ns = Value::object();
      ns.mark_namespace();
      for (const auto& p : a.positional) {
        if (p.is_object()) {
          for (const auto& [k, v] : p.fields()) ns.set_member(k, v);
        }
      }
      for (const auto& [k, v] : a.keywords) ns.set_member(k, v);
      return ns;
    });
    g["dict"] = Value::function([](const CallArgs& a) {
      Value d = Value::object();
      for (const auto& [k, v] : a.keywords) d.set_member(k, v);
      return d;
    });
    g["raise_exception"] = Value::function([this](const CallArgs& a) -> Value {
      fail("{}: the template raised an error: {}", name_,
           a.positional.empty() ? "" : a.positional[0].str());
    });
    g["strftime_now"] = Value::function([this](const CallArgs& a) {
      const std::time_t t = o_.now ? o_.now : std::time(nullptr);
      std::tm tm{};
      if (o_.now) {
        gmtime_r(&t, &tm);  // a fixed clock is read as UTC (reproducible renders)
      } else {
        localtime_r(&t, &tm);
      }
      char buf[256];
      const std::string f = a.positional.empty() ? "%Y-%m-%d" : a.positional[0].str();
      const size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
      return Value(std::string(buf, n));
    });
  }

  // ---- statements ----

  void exec_body(const Body& body) {
    for (const auto& n : body) exec(*n);
  }

  void exec(const Node& n) {
    step(n.line);
    switch (n.kind) {
      case Node::Kind::kRoot:
        exec_body(n.body);
        return;
      case Node::Kind::kText:
        emit(n.text, n.line);
        return;
      case Node::Kind::kOutput:
        emit(eval(*n.expr).str(), n.line);
        return;
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          if (eval(*cond).truthy()) {
            exec_body(body);
            return;
          }
        }
        exec_body(n.else_body);
        return;
      case Node::Kind::kFor:
        exec_for(n);
        return;
      case Node::Kind::kSet: {
        Value v;
        if (n.expr) {
          v = eval(*n.expr);
        } else {  // block set: the body's output
          std::string saved = std::move(out_);
          out_.clear();
          exec_body(n.body);
          v = Value(std::move(out_));
          out_ = std::move(saved);
        }
        if (!n.attr.empty()) {
          const Value ns = lookup(n.targets[0]);
          if (!ns.is_namespace())
            error(n.line,
                  "can only set attributes of a namespace(), not of '" + n.targets[0] + "'");
          ns.set_member(n.attr, std::move(v));
          return;
        }
        assign_targets(n.targets, std::move(v), n.line);
        return;
      }
      case Node::Kind::kMacro:
        define_macro(n);
        return;
      case Node::Kind::kFilterBlock: {
        std::string saved = std::move(out_);
        out_.clear();
        exec_body(n.body);
        Value body(std::move(out_));
        out_ = std::move(saved);
        emit(filter(n.expr->name, body, call_args(*n.expr, 1), n.line).str(), n.line);
        return;
      }
      case Node::Kind::kBreak:
        throw BreakLoop{};
      case Node::Kind::kContinue:
        throw ContinueLoop{};
    }
  }

  void assign_targets(const std::vector<std::string>& targets, Value v, int line) {
    if (targets.size() == 1) {
      assign(targets[0], std::move(v));
      return;
    }
    const Array items = iterate(v, line);
    if (items.size() != targets.size()) {
      error(line,
            fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
  }

  void exec_for(const Node& n) {
    Array items = iterate(eval(*n.expr), n.line);
    if (n.filter) {  // "for x in xs if cond": filtered before loop.* counts
      Array kept;
      for (auto& item : items) {
        frames_.emplace_back();
        assign_targets(n.targets, item, n.line);
        const bool keep = eval(*n.filter).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec_body(n.else_body);
      return;
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step(n.line);
      frames_.emplace_back();
      Value loop = Value::object({{"index", Value(i + 1)},
                                  {"index0", Value(i)},
                                  {"revindex", Value(len - i)},
                                  {"revindex0", Value(len - i - 1)},
                                  {"first", Value(i == 0)},
                                  {"last", Value(i == len - 1)},
                                  {"length", Value(len)},
                                  {"depth", Value(1)},
                                  {"depth0", Value(0)}});
      loop.set_member("previtem", i > 0 ? items[i - 1] : Value());
      loop.set_member("nextitem", i + 1 < len ? items[i + 1] : Value());
      loop.set_member("cycle", Value::function([i](const CallArgs& a) {
                        return a.positional.empty() ? Value()
                                                    : a.positional[i % a.positional.size()];
                      }));
      assign("loop", loop);
      assign_targets(n.targets, items[i], n.line);
      bool stop = false;
      try {
        exec_body(n.body);
      } catch (const BreakLoop&) {
        stop = true;
      } catch (const ContinueLoop&) {
      }
      frames_.pop_back();
      if (stop) break;
    }
  }

  void define_macro(const Node& n) {
    const Node* def = &n;
    assign(n.text, Value::function([this, def](const CallArgs& a) {
             frames_.emplace_back();
             for (size_t i = 0; i < def->params.size(); ++i) {
               const auto& [param, dflt] = def->params[i];
               const Value* given = a.get(param, i);
               assign(param, given ? *given : dflt ? eval(*dflt) : Value());
             }
             std::string saved = std::move(out_);
             out_.clear();
             try {
               exec_body(def->body);
             } catch (...) {
               frames_.pop_back();
               out_ = std::move(saved);
               throw;
             }
             Value result(std::move(out_));
             out_ = std::move(saved);
             frames_.pop_back();
             return result;
           }));
  }

  // ---- expressions ----

  Array iterate(const Value& v, int line) {
    switch (v.kind()) {
      case Value::Kind::kUndefined:
      case Value::Kind::kNone:
        if (v.is_none()) error(line, "'NoneType' object is not iterable");
        return {};
      case Value::Kind::kArray:
        return v.items();
      case Value::Kind::kObject: {
        Array keys;
        for (const auto& [k, _] : v.fields()) keys.push_back(Value(k));
        return keys;
      }
      case Value::Kind::kString: {
        Array chars;
        const std::string& s = v.str_ref();
        for (size_t i = 0; i < s.size();) {  // by UTF-8 character, as Python iterates a str
          size_t len = 1;
          const unsigned char c = static_cast<unsigned char>(s[i]);
          if (c >= 0xf0)
            len = 4;
          else if (c >= 0xe0)
            len = 3;
          else if (c >= 0xc0)
            len = 2;
          chars.push_back(Value(s.substr(i, len)));
          i += len;
        }
        return chars;
      }
      default:
        error(line, "'" + v.type_name() + "' object is not iterable");
    }
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        Array a;
        for (const auto& x : e.args) a.push_back(eval(*x));
        return Value::array(std::move(a));
      }
      case Expr::Kind::kDict: {
        Value d = Value::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2)
          d.set_member(eval(*e.args[i]).str(), eval(*e.args[i + 1]));
        return d;
      }
      case Expr::Kind::kAttr:
        return attribute(eval(*e.args[0]), e.name, e.line);
      case Expr::Kind::kIndex:
        return index(eval(*e.args[0]), eval(*e.args[1]), e.line);
      case Expr::Kind::kSlice:
        return slice(eval(*e.args[0]), e.args[1] ? eval(*e.args[1]) : Value(),
                     e.args[2] ? eval(*e.args[2]) : Value(), e.args[3] ? eval(*e.args[3]) : Value(),
                     e.line);
      case Expr::Kind::kCall: {
        const Value f = eval(*e.args[0]);
        if (!f.is_function()) error(e.line, "'" + describe(*e.args[0]) + "' is not callable");
        return f.fn()(call_args(e, 1));
      }
      case Expr::Kind::kFilter:
        return filter(e.name, eval(*e.args[0]), call_args(e, 1), e.line);
      case Expr::Kind::kTest: {
        const bool r = test(e.name, eval(*e.args[0]), call_args(e, 1), e.line);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number())
          error(e.line, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v;
        return v.kind() == Value::Kind::kFloat ? Value(-v.as_float()) : Value(-v.as_int());
      }
      case Expr::Kind::kBinary:
        return binary(e);
      case Expr::Kind::kCondition:
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value();
    }
    return Value();
  }

  static std::string describe(const Expr& e) {
    return e.kind == Expr::Kind::kName || e.kind == Expr::Kind::kAttr ? e.name : "expression";
  }

  CallArgs call_args(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) a.keywords.emplace_back(k, eval(*v));
    return a;
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    const Value a = eval(*e.args[0]), b = eval(*e.args[1]);
    if (op == "~") return Value(a.str() + b.str());
    if (op == "==") return Value(a == b);
    if (op == "!=") return Value(!(a == b));
    if (op == "in") return Value(contains(b, a, e.line));
    if (op == "not in") return Value(!contains(b, a, e.line));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      const int c = compare(a, b, e.line);
      return Value(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) return Value(a.str_ref() + b.str_ref());
      if (a.is_array() && b.is_array()) {
        Array r = a.items();
        r.insert(r.end(), b.items().begin(), b.items().end());
        return Value::array(std::move(r));
      }
    }
    if (op == "*") {
      if ((a.is_string() || a.is_array()) && b.kind() == Value::Kind::kInt)
        return repeat(a, b.as_int());
      if ((b.is_string() || b.is_array()) && a.kind() == Value::Kind::kInt)
        return repeat(b, a.as_int());
    }
    if (!a.is_number() || !b.is_number()) {
      error(e.line, fmt::format("unsupported operand types for {}: '{}' and '{}'", op,
                                a.type_name(), b.type_name()));
    }
    const bool floats = a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat;
    if (op == "/") {
      if (b.as_float() == 0) error(e.line, "division by zero");
      return Value(a.as_float() / b.as_float());
    }
    if (op == "**") {
      if (!floats && b.as_int() >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < b.as_int() && i < 64; ++i) r *= a.as_int();
        return Value(r);
      }
      return Value(std::pow(a.as_float(), b.as_float()));
    }
    if (floats) {
      const double x = a.as_float(), y = b.as_float();
      if (op == "+") return Value(x + y);
      if (op == "-") return Value(x - y);
      if (op == "*") return Value(x * y);
      if (y == 0) error(e.line, "division by zero");
      if (op == "//") return Value(std::floor(x / y));
      if (op == "%") return Value(x - std::floor(x / y) * y);
    } else {
      const int64_t x = a.as_int(), y = b.as_int();
      if (op == "+") return Value(x + y);
      if (op == "-") return Value(x - y);
      if (op == "*") return Value(x * y);
      if (y == 0) error(e.line, "division by zero");
      const int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)) ? 1 : 0);  // Python floors
      if (op == "//") return Value(q);
      if (op == "%") return Value(x - q * y);
    }
    error(e.line, "unknown operator " + op);
  }

  Value repeat(const Value& v, int64_t n) {
    if (v.is_string()) {
      std::string r;
      for (int64_t i = 0; i < n; ++i) {
        r += v.str_ref();
        if (r.size() > o_.max_output) fail("{}: string repetition too long", name_);
      }
      return Value(r);
    }
    Array r;
    for (int64_t i = 0; i < n; ++i) r.insert(r.end(), v.items().begin(), v.items().end());
    return Value::array(std::move(r));
  }

  bool contains(const Value& haystack, const Value& needle, int line) {
    if (haystack.is_string()) {
      if (!needle.is_string()) error(line, "'in <string>' requires a string as left operand");
      return haystack.str_ref().find(needle.str_ref()) != std::string::npos;
    }
    if (haystack.is_array()) {
      return std::any_of(haystack.items().begin(), haystack.items().end(),
                         [&](const Value& x) { return x == needle; });
    }
    if (haystack.is_object())
      return !haystack.member(needle.str()).is_undefined() || has_key(haystack, needle.str());
    if (haystack.is_undefined()) return false;
    error(line, "argument of type '" + haystack.type_name() + "' is not iterable");
  }

  static bool has_key(const Value& obj, const std::string& key) {
    return std::any_of(obj.fields().begin(), obj.fields().end(),
                       [&](const auto& kv) { return kv.first == key; });
  }

  int compare(const Value& a, const Value& b, int line) {
    if (a.is_number() && b.is_number()) {
      const double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string())
      return a.str_ref().compare(b.str_ref()) < 0 ? -1 : a.str_ref() == b.str_ref() ? 0 : 1;
    if (a.is_array() && b.is_array()) {
      for (size_t i = 0; i < a.items().size() && i < b.items().size(); ++i) {
        const int c = compare(a.items()[i], b.items()[i], line);
        if (c) return c;
      }
      return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size() ? 1 : 0;
    }
    error(line,
          fmt::format("'<' not supported between '{}' and '{}'", a.type_name(), b.type_name()));
  }

  Value attribute(const Value& v, const std::string& name, int line) {
    if (v.is_undefined()) error(line, "'" + name + "' of an undefined value");
    if (v.is_object()) {
      if (has_key(v, name)) return v.member(name);
      if (!v.is_namespace() &&
          (name == "items" || name == "keys" || name == "values" || name == "get")) {
        return method(v, name, line);
      }
      return Value();
    }
    if (v.is_string() || v.is_array()) return method(v, name, line);
    if (v.is_none()) error(line, "'None' has no attribute '" + name + "'");
    return Value();
  }

  Value index(const Value& v, const Value& key, int line) {
    if (v.is_undefined()) error(line, "subscript of an undefined value");
    if (v.is_object()) return v.member(key.str());
    if (v.is_array() || v.is_string()) {
      if (!key.is_number()) {
        if (key.is_string()) return attribute(v, key.str_ref(), line);
        error(line, "indices must be integers");
      }
      const int64_t n = v.is_array() ? static_cast<int64_t>(v.items().size())
                                     : static_cast<int64_t>(v.str_ref().size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();  // jinja2: undefined, not an error
      return v.is_array() ? v.items()[static_cast<size_t>(i)]
                          : Value(v.str_ref().substr(static_cast<size_t>(i), 1));
    }
    error(line, "'" + v.type_name() + "' object is not subscriptable");
  }

  Value slice(const Value& v, const Value& start_v, const Value& stop_v, const Value& step_v,
              int line) {
    if (!v.is_array() && !v.is_string())
      error(line, "'" + v.type_name() + "' object is not sliceable");
    const int64_t n = v.is_array() ? static_cast<int64_t>(v.items().size())
                                   : static_cast<int64_t>(v.str_ref().size());
    const int64_t stepv = step_v.is_number() ? step_v.as_int() : 1;
    if (stepv == 0) error(line, "slice step cannot be zero");
    auto clampi = [&](const Value& x, int64_t dflt) {
      if (!x.is_number()) return dflt;
      int64_t i = x.as_int();
      if (i < 0) i += n;
      if (stepv > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t start = clampi(start_v, stepv > 0 ? 0 : n - 1),
                  stop = clampi(stop_v, stepv > 0 ? n : -1);
    Array a;
    std::string s;
    for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
      if (v.is_array()) {
        a.push_back(v.items()[static_cast<size_t>(i)]);
      } else {
        s += v.str_ref()[static_cast<size_t>(i)];
      }
    }
    return v.is_array() ? Value::array(std::move(a)) : Value(s);
  }

  // ---- methods of str, dict and list ----

  Value method(const Value& self, const std::string& name, int line) {
    return Value::function(
        [this, self, name, line](const CallArgs& a) { return call_method(self, name, a, line); });
  }

  static std::string strip_chars(const CallArgs& a) {
    const Value* c = a.get("chars", 0);
    return c && c->is_string() ? c->str_ref() : std::string(" \t\n\r\f\v");
  }

  Value call_method(const Value& self, const std::string& name, const CallArgs& a, int line) {
    const Value* a0 = a.get("", 0);
    if (self.is_string()) {
      const std::string& s = self.str_ref();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const std::string chars = strip_chars(a);
        size_t b = 0, e = s.size();
        if (name != "rstrip")
          b = s.find_first_not_of(chars) == std::string::npos ? s.size()
                                                              : s.find_first_not_of(chars);
        if (name != "lstrip") {
          const size_t last = s.find_last_not_of(chars);
          e = last == std::string::npos ? 0 : last + 1;
        }
        return Value(b < e ? s.substr(b, e - b) : std::string());
      }
      if (name == "upper" || name == "lower") {
        std::string r = s;
        for (char& c : r)
          c = static_cast<char>(name == "upper" ? std::toupper(static_cast<unsigned char>(c))
                                                : std::tolower(static_cast<unsigned char>(c)));
        return Value(r);
      }
      if (name == "title" || name == "capitalize") return filter(name, self, {}, line);
      if (name == "startswith" || name == "endswith") {
        if (!a0) error(line, name + "() needs an argument");
        Array options = a0->is_array() ? a0->items() : Array{*a0};
        for (const auto& o : options) {
          const std::string& p = o.str_ref();
          if (name == "startswith"
                  ? s.rfind(p, 0) == 0
                  : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0) {
            return Value(true);
          }
        }
        return Value(false);
      }
      if (name == "split" || name == "rsplit") {
        const Value* sep = a.get("sep", 0);
        const Value* maxsplit = a.get("maxsplit", 1);
        const int64_t limit = maxsplit && maxsplit->is_number() ? maxsplit->as_int() : -1;
        Array parts;
        if (!sep || sep->is_none()) {  // runs of whitespace
          std::string cur;
          bool in_word = false;
          int64_t splits = 0;
          for (size_t i = 0; i < s.size(); ++i) {
            const bool ws = std::isspace(static_cast<unsigned char>(s[i]));
            if (ws && in_word && (limit < 0 || splits < limit)) {
              parts.push_back(Value(cur));
              cur.clear();
              in_word = false;
              ++splits;
            } else if (!ws || in_word) {
              cur += s[i];
              in_word = true;
            }
          }
          if (in_word) {
            while (!cur.empty() && std::isspace(static_cast<unsigned char>(cur.back())))
              cur.pop_back();
            parts.push_back(Value(cur));
          }
          return Value::array(std::move(parts));
        }
        const std::string& d = sep->str_ref();
        if (d.empty()) error(line, "empty separator");
        size_t start = 0;
        int64_t splits = 0;
        for (size_t p; (p = s.find(d, start)) != std::string::npos && (limit < 0 || splits < limit);
             ++splits) {
          parts.push_back(Value(s.substr(start, p - start)));
          start = p + d.size();
        }
        parts.push_back(Value(s.substr(start)));
        return Value::array(std::move(parts));
      }
      if (name == "splitlines") {
        Array parts;
        size_t start = 0;
        for (size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '\n' || s[i] == '\r') {
            parts.push_back(Value(s.substr(start, i - start)));
            if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
            start = i + 1;
          }
        }
        if (start < s.size()) parts.push_back(Value(s.substr(start)));
        return Value::array(std::move(parts));
      }
      if (name == "replace") {
        if (a.positional.size() < 2) error(line, "replace() needs two arguments");
        CallArgs fa;
        fa.positional = a.positional;
        return filter("replace", self, fa, line);
      }
      if (name == "find" || name == "count") {
        if (!a0) error(line, name + "() needs an argument");
        const std::string& sub = a0->str_ref();
        if (name == "find") {
          const size_t p = s.find(sub);
          return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(p));
        }
        int64_t c = 0;
        for (size_t p = 0; !sub.empty() && (p = s.find(sub, p)) != std::string::npos;
             p += sub.size())
          ++c;
        return Value(c);
      }
      if (name == "join") {
        std::string r;
        if (a0) {
          const Array items = iterate(*a0, line);
          for (size_t i = 0; i < items.size(); ++i) r += (i ? s : "") + items[i].str();
        }
        return Value(r);
      }
      if (name == "format") {  // "{}" and "{0}" placeholders
        std::string r;
        size_t next = 0;
        for (size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
            r += '{';
            ++i;
          } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
            r += '}';
            ++i;
          } else if (s[i] == '{') {
            const size_t close = s.find('}', i);
            if (close == std::string::npos) error(line, "format(): unmatched '{'");
            const std::string field = s.substr(i + 1, close - i - 1);
            const size_t idx = field.empty() ? next++ : static_cast<size_t>(std::stoul(field));
            if (idx >= a.positional.size()) error(line, "format(): not enough arguments");
            r += a.positional[idx].str();
            i = close;
          } else {
            r += s[i];
          }
        }
        return Value(r);
      }
    }
    if (self.is_object()) {
      if (name == "items") {
        Array r;
        for (const auto& [k, v] : self.fields()) r.push_back(Value::array({Value(k), v}));
        return Value::array(std::move(r));
      }
      if (name == "keys" || name == "values") {
        Array r;
        for (const auto& [k, v] : self.fields()) r.push_back(name == "keys" ? Value(k) : v);
        return Value::array(std::move(r));
      }
      if (name == "get") {
        if (!a0) error(line, "get() needs a key");
        const std::string key = a0->str();
        if (has_key(self, key)) return self.member(key);
        const Value* d = a.get("default", 1);
        return d ? *d : Value::none();
      }
    }
    if (self.is_array()) {
      if (name == "index" && a0) {
        for (size_t i = 0; i < self.items().size(); ++i) {
          if (self.items()[i] == *a0) return Value(static_cast<int64_t>(i));
        }
        error(line, a0->repr() + " is not in list");
      }
      if (name == "count" && a0) {
        return Value(
            static_cast<int64_t>(std::count(self.items().begin(), self.items().end(), *a0)));
      }
    }
    error(line, "'" + self.type_name() + "' object has no method '" + name + "'");
  }

  // ---- filters ----

  Value filter(const std::string& name, const Value& v, const CallArgs& a, int line) {
    const Value* a0 = a.get("", 0);
    if (name == "safe" || name == "e" || name == "escape") {
      if (name == "safe") return v;
      std::string r;
      for (char c : v.str()) {
        switch (c) {
          case '&':
            r += "&amp;";
            break;
          case '<':
            r += "&lt;";
            break;
          case '>':
            r += "&gt;";
            break;
          case '"':
            r += "&#34;";
            break;
          case '\'':
            r += "&#39;";
            break;
          default:
            r += c;
        }
      }
      return Value(r);
    }
    if (name == "default" || name == "d") {
      const Value* bool_mode = a.get("boolean", 1);
      const bool use_default =
          v.is_undefined() || (bool_mode && bool_mode->truthy() && !v.truthy());
      return use_default ? (a.get("default_value", 0) ? *a.get("default_value", 0) : Value("")) : v;
    }
    if (v.is_generator() && (name == "length" || name == "count" || name == "last")) {
      error(line, "object of type 'generator' has no len() (add '| list')");
    }
    if (name == "length" || name == "count") {
      if (v.is_string()) return Value(static_cast<int64_t>(iterate(v, line).size()));
      if (v.is_array()) return Value(static_cast<int64_t>(v.items().size()));
      if (v.is_object()) return Value(static_cast<int64_t>(v.fields().size()));
      if (v.is_undefined()) return Value(int64_t{0});
      error(line, "object of type '" + v.type_name() + "' has no len()");
    }
    if (name == "string") return Value(v.str());
    if (name == "trim") {
      CallArgs sa;
      if (a0) sa.positional.push_back(*a0);
      return call_method(Value(v.str()), "strip", sa, line);
    }
    if (name == "upper" || name == "lower") return call_method(Value(v.str()), name, {}, line);
    if (name == "capitalize" || name == "title") {
      std::string r = v.str();
      bool start = true;
      for (size_t i = 0; i < r.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(r[i]);
        if (name == "capitalize") {
          r[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
        } else {
          r[i] = static_cast<char>(start ? std::toupper(c) : std::tolower(c));
          start = !std::isalnum(c);
        }
      }
      return Value(r);
    }
    if (name == "replace") {
      if (a.positional.size() < 2) error(line, "replace needs the old and new strings");
      const std::string s = v.str(), from = a.positional[0].str(), to = a.positional[1].str();
      const int64_t limit = a.positional.size() > 2 ? a.positional[2].as_int() : -1;
      std::string r;
      if (from.empty()) {
        int64_t n = 0;
        for (char c : s) {
          if (limit < 0 || n++ < limit) r += to;
          r += c;
        }
        if (limit < 0 || n < limit) r += to;
        return Value(r);
      }
      size_t start = 0;
      int64_t n = 0;
      for (size_t p; (p = s.find(from, start)) != std::string::npos && (limit < 0 || n < limit);
           ++n) {
        r += s.substr(start, p - start) + to;
        start = p + from.size();
      }
      return Value(r + s.substr(start));
    }
    if (name == "first" || name == "last") {
      const Array items = iterate(v, line);
      if (items.empty()) return Value();
      return name == "first" ? items.front() : items.back();
    }
    if (name == "list") return Value::array(iterate(v, line));
    if (name == "reverse") {
      if (v.is_string()) {
        std::string r = v.str_ref();
        std::reverse(r.begin(), r.end());
        return Value(r);
      }
      Array items = iterate(v, line);
      std::reverse(items.begin(), items.end());
      return Value::array(std::move(items));
    }
    if (name == "items") {
      if (v.is_undefined()) return Value::array();
      if (!v.is_object()) error(line, "items: a mapping was expected, not '" + v.type_name() + "'");
      return call_method(v, "items", {}, line);
    }
    if (name == "join") {
      const Value* attr = a.get("attribute", 1);
      std::string r;
      const Array items = iterate(v, line);
      const std::string sep = a0 ? a0->str() : "";
      for (size_t i = 0; i < items.size(); ++i) {
        r += (i ? sep : "") + (attr ? attribute(items[i], attr->str(), line) : items[i]).str();
      }
      return Value(r);
    }
    if (name == "tojson") {
      // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None,
      // sort_keys=False).
      const Value* ascii = a.get("ensure_ascii", 0);
      const Value* indent = a.get("indent", 1);
      const Value* sort = a.get("sort_keys", 3);
      if (const Value* sep = a.get("separators", 2); sep && !sep->is_none()) {
        error(line, "tojson: custom separators are not supported");
      }
      return Value(
          v.to_json(indent && indent->is_number() ? static_cast<int>(indent->as_int()) : -1,
                    ascii && ascii->truthy(), sort && sort->truthy()));
    }
    if (name == "int") {
      if (v.is_number()) return Value(v.as_int());
      if (v.is_string()) {
        try {
          return Value(static_cast<int64_t>(std::stoll(v.str_ref())));
        } catch (...) {
        }
      }
      return a0 ? *a0 : Value(int64_t{0});
    }
    if (name == "float") {
      if (v.is_number()) return Value(v.as_float());
      if (v.is_string()) {
        try {
          return Value(std::stod(v.str_ref()));
        } catch (...) {
        }
      }
      return a0 ? *a0 : Value(0.0);
    }
    if (name == "abs") {
      if (!v.is_number()) error(line, "abs of '" + v.type_name() + "'");
      return v.kind() == Value::Kind::kFloat ? Value(std::fabs(v.as_float()))
                                             : Value(static_cast<int64_t>(std::llabs(v.as_int())));
    }
    if (name == "round") {
      const int64_t digits = a0 ? a0->as_int() : 0;
      const double scale = std::pow(10.0, static_cast<double>(digits));
      return Value(std::nearbyint(v.as_float() * scale) / scale);
    }
    if (name == "indent") {
      const Value* width = a.get("width", 0);
      const Value* first = a.get("first", 1);
      const Value* blank = a.get("blank", 2);
      const std::string pad =
          width && width->is_string()
              ? width->str_ref()
              : std::string(static_cast<size_t>(width ? width->as_int() : 4), ' ');
      const std::string s = v.str();
      std::string r;
      size_t start = 0;
      bool first_line = true;
      while (start <= s.size()) {
        size_t nl = s.find('\n', start);
        const std::string ln =
            s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        const bool pad_it = (!first_line || (first && first->truthy())) &&
                            (!ln.empty() || (blank && blank->truthy()));
        r += (pad_it ? pad : "") + ln;
        if (nl == std::string::npos) break;
        r += '\n';
        start = nl + 1;
        first_line = false;
      }
      return Value(r);
    }
    if (name == "wordcount")
      return Value(
          static_cast<int64_t>(call_method(Value(v.str()), "split", {}, line).items().size()));
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      const bool by_attr = name == "selectattr" || name == "rejectattr";
      const bool keep_match = name == "select" || name == "selectattr";
      CallArgs test_args;
      const size_t test_at = by_attr ? 1 : 0;
      for (size_t i = test_at + 1; i < a.positional.size(); ++i)
        test_args.positional.push_back(a.positional[i]);
      const std::string test_name =
          a.positional.size() > test_at ? a.positional[test_at].str() : "";
      Array r;
      for (const auto& item : v.truthy() ? iterate(v, line) : Array{}) {  // jinja2: "if value:"
        const Value subject = by_attr ? attribute_path(item, a0 ? a0->str() : "", line) : item;
        const bool match =
            test_name.empty() ? subject.truthy() : test(test_name, subject, test_args, line);
        if (match == keep_match) r.push_back(item);
      }
      return generator(std::move(r));
    }
    if (name == "map") {
      Array r;
      const Value* attr = a.get("attribute", 99);
      const Value* dflt = a.get("default", 99);
      for (const auto& item : v.truthy() ? iterate(v, line) : Array{}) {
        if (attr) {
          Value x = attribute_path(item, attr->str(), line);
          r.push_back(x.is_undefined() && dflt ? *dflt : x);
        } else {
          if (!a0) error(line, "map needs a filter name or attribute=");
          CallArgs fa;
          for (size_t i = 1; i < a.positional.size(); ++i) fa.positional.push_back(a.positional[i]);
          r.push_back(filter(a0->str(), item, fa, line));
        }
      }
      return generator(std::move(r));
    }
    if (name == "unique") {
      Array r;
      for (const auto& item : iterate(v, line)) {
        if (std::none_of(r.begin(), r.end(), [&](const Value& x) { return x == item; }))
          r.push_back(item);
      }
      return Value::array(std::move(r));
    }
    if (name == "sort" || name == "dictsort" || name == "max" || name == "min") {
      const Value* attr = a.get("attribute", name == "sort" ? 2 : 99);
      const Value* rev = a.get("reverse", name == "sort" ? 0 : 99);
      Array items =
          name == "dictsort" ? call_method(v, "items", {}, line).items() : iterate(v, line);
      auto key = [&](const Value& x) {
        if (name == "dictsort") return x.items()[0];
        return attr ? attribute_path(x, attr->str(), line) : x;
      };
      if (name == "max" || name == "min") {
        if (items.empty()) return Value();
        Value best = items[0];
        for (const auto& x : items) {
          const int c = compare(key(x), key(best), line);
          if (name == "max" ? c > 0 : c < 0) best = x;
        }
        return best;
      }
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        return compare(key(x), key(y), line) < 0;
      });
      if (rev && rev->truthy()) std::reverse(items.begin(), items.end());
      return Value::array(std::move(items));
    }
    if (name == "sum") {
      Value total(int64_t{0});
      for (const auto& x : iterate(v, line)) {
        const Value y =
            a.get("attribute", 99) ? attribute_path(x, a.get("attribute", 99)->str(), line) : x;
        total = total.kind() == Value::Kind::kFloat || y.kind() == Value::Kind::kFloat
                    ? Value(total.as_float() + y.as_float())
                    : Value(total.as_int() + y.as_int());
      }
      return total;
    }
    error(line, "unknown filter '" + name + "'");
  }

  static Value generator(Array items) {
    Value g = Value::array(std::move(items));
    g.mark_generator();
    return g;
  }

  // "a.b.0": attribute_path as Jinja's attribute= arguments read it.
  Value attribute_path(const Value& v, const std::string& path, int line) {
    Value cur = v;
    size_t start = 0;
    while (start <= path.size()) {
      const size_t dot = path.find('.', start);
      const std::string part =
          path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (cur.is_undefined()) return cur;
      if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && cur.is_array()) {
        cur = index(cur, Value(static_cast<int64_t>(std::stoll(part))), line);
      } else {
        cur = cur.is_object() ? cur.member(part) : Value();
      }
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    return cur;
  }

  // ---- tests ----

  bool test(const std::string& name, const Value& v, const CallArgs& a, int line) {
    const Value* a0 = a.get("", 0);
    using K = Value::Kind;
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.kind() == K::kBool;
    if (name == "true") return v.kind() == K::kBool && v.as_bool();
    if (name == "false") return v.kind() == K::kBool && !v.as_bool();
    if (name == "integer") return v.kind() == K::kInt;
    if (name == "float") return v.kind() == K::kFloat;
    if (name == "number") return v.is_number();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_object();
    if (name == "sequence") return v.is_array() || v.is_string() || v.is_object();
    if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
    if (name == "callable") return v.is_function();
    if (name == "lower" || name == "upper") {
      const std::string s = v.str();
      return std::none_of(s.begin(), s.end(), [&](char c) {
        return name == "lower" ? std::isupper(static_cast<unsigned char>(c))
                               : std::islower(static_cast<unsigned char>(c));
      });
    }
    if (name == "odd" || name == "even") return (v.as_int() % 2 != 0) == (name == "odd");
    if (!a0) error(line, "test '" + name + "' needs an argument");
    if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") return v == *a0;
    if (name == "ne" || name == "!=") return !(v == *a0);
    if (name == "lt" || name == "<") return compare(v, *a0, line) < 0;
    if (name == "le" || name == "<=") return compare(v, *a0, line) <= 0;
    if (name == "gt" || name == ">") return compare(v, *a0, line) > 0;
    if (name == "ge" || name == ">=") return compare(v, *a0, line) >= 0;
    if (name == "in") return contains(*a0, v, line);
    if (name == "divisibleby") return a0->as_int() != 0 && v.as_int() % a0->as_int() == 0;
    error(line, "unknown test '" + name + "'");
  }

  const std::string& name_;
  const Template::Options& o_;
  std::vector<Frame> frames_;
  std::string out_;
  int64_t steps_ = 0;
};

}  // namespace

Template::Template(const std::string& source, std::string name)
    : name_(std::move(name)), root_(parse_template(source, name_)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& context, const Options& options) const {
  Renderer r(name_, options, context);
  return r.run(*root_);
}

}  // namespace mcmoe::jinja
