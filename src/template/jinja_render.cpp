// Evaluation of the parsed template with Jinja2's semantics where chat templates rely on them:
// undefined variables (print as "", iterate as empty, fail on attribute access), Python's
// truthiness and operators, scoped loops (assignments inside a loop body stay there, hence
// namespace()), macros with their own scope.
// (Methods, filters and tests: jinja_builtins.cpp.)
#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "core/error.h"
#include "template/jinja.h"
#include "template/jinja_ast.h"
#include "template/jinja_renderer.h"

namespace mcmoe::jinja::detail {

void Renderer::install_globals() {
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

void Renderer::exec(const Node& n) {
  step(n.line);
  switch (n.kind) {
    case Node::Kind::kRoot:
      exec_body(n.body);
      return;
    case Node::Kind::kText:
      emit(n.text, n.line);
      return;
    case Node::Kind::kOutput:
      emit(eval(required(n.expr, n.line)).str(), n.line);
      return;
    case Node::Kind::kIf:
      for (const auto& [cond, body] : n.branches) {
        if (eval(required(cond, n.line)).truthy()) {
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
        v = Value(capture(n.body));
      }
      if (!n.attr.empty()) {
        const Value ns = lookup(n.targets[0]);
        if (!ns.is_namespace())
          error(n.line, "can only set attributes of a namespace(), not of '" + n.targets[0] + "'");
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
      // The filter's arguments after the body's output, its args[0] (null: jinja_ast.h).
      const Expr& f = required(n.expr, n.line);
      const Value body(capture(n.body));
      emit(filter(f.name, body, call_args(f, 1), n.line).str(), n.line);
      return;
    }
    case Node::Kind::kBreak:
      throw BreakLoop{};
    case Node::Kind::kContinue:
      throw ContinueLoop{};
  }
}

std::string Renderer::capture(const Body& body) {
  std::string saved = std::move(out_);
  out_.clear();
  try {
    exec_body(body);
  } catch (...) {
    out_ = std::move(saved);
    throw;
  }
  return std::exchange(out_, std::move(saved));
}

void Renderer::assign_targets(const std::vector<std::string>& targets, Value v, int line) {
  if (targets.size() == 1) {
    assign(targets[0], std::move(v));
    return;
  }
  const Array items = iterate(v, line);
  if (items.size() != targets.size()) {
    error(line, fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
  }
  for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
}

void Renderer::exec_for(const Node& n) {
  Array items = iterate(eval(required(n.expr, n.line)), n.line);
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
                      return a.positional.empty() ? Value() : a.positional[i % a.positional.size()];
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

void Renderer::define_macro(const Node& n) {
  const Node* def = &n;
  assign(n.text, Value::function([this, def](const CallArgs& a) {
           // A macro calling itself without end would overflow the stack long before
           // max_steps; Jinja stops at Python's recursion limit.
           if (macro_depth_ >= kMaxMacroDepth) {
             error(def->line, fmt::format("macro '{}' calls nested deeper than {}", def->text,
                                          kMaxMacroDepth));
           }
           ++macro_depth_;
           struct Leave {
             int& depth;
             ~Leave() { --depth; }
           } leave{macro_depth_};
           frames_.emplace_back();
           for (size_t i = 0; i < def->params.size(); ++i) {
             const auto& [param, dflt] = def->params[i];
             const Value* given = a.get(param, i);
             assign(param, given ? *given : dflt ? eval(*dflt) : Value());
           }
           std::string result;
           try {
             result = capture(def->body);
           } catch (...) {
             frames_.pop_back();
             throw;
           }
           frames_.pop_back();
           return Value(std::move(result));
         }));
}

Array Renderer::iterate(const Value& v, int line) {
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

Value Renderer::eval(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.value;
    case Expr::Kind::kName:
      return lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      Array a;
      for (size_t i = 0; i < e.args.size(); ++i) a.push_back(eval(arg(e, i)));
      return Value::array(std::move(a));
    }
    case Expr::Kind::kDict: {
      Value d = Value::object();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2)
        d.set_member(eval(arg(e, i)).str(), eval(arg(e, i + 1)));
      return d;
    }
    case Expr::Kind::kAttr:
      return attribute(eval(arg(e, 0)), e.name, e.line);
    case Expr::Kind::kIndex:
      return index(eval(arg(e, 0)), eval(arg(e, 1)), e.line);
    case Expr::Kind::kSlice: {  // args: the sliced value, then start, stop, step (each optional)
      const auto bound = [&](size_t i) {
        return i < e.args.size() && e.args[i] ? eval(*e.args[i]) : Value();
      };
      return slice(eval(arg(e, 0)), bound(1), bound(2), bound(3), e.line);
    }
    case Expr::Kind::kCall: {
      const Value f = eval(arg(e, 0));
      if (!f.is_function()) error(e.line, "'" + describe(arg(e, 0)) + "' is not callable");
      return f.fn()(call_args(e, 1));
    }
    case Expr::Kind::kFilter:
      return filter(e.name, eval(arg(e, 0)), call_args(e, 1), e.line);
    case Expr::Kind::kTest: {
      const bool r = test(e.name, eval(arg(e, 0)), call_args(e, 1), e.line);
      return Value(e.negated ? !r : r);
    }
    case Expr::Kind::kUnary: {
      const Value v = eval(arg(e, 0));
      if (e.name == "not") return Value(!v.truthy());
      if (!v.is_number())
        error(e.line, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
      if (e.name == "+") return v;
      return v.kind() == Value::Kind::kFloat ? Value(-v.as_float()) : Value(-v.as_int());
    }
    case Expr::Kind::kBinary:
      return binary(e);
    case Expr::Kind::kCondition:
      if (eval(arg(e, 0)).truthy()) return eval(arg(e, 1));
      return e.args.size() > 2 && e.args[2] ? eval(*e.args[2]) : Value();  // "a if b": no else
  }
  return Value();
}

Value Renderer::binary(const Expr& e) {
  const std::string& op = e.name;
  if (op == "and") {
    Value a = eval(arg(e, 0));
    return a.truthy() ? eval(arg(e, 1)) : a;
  }
  if (op == "or") {
    Value a = eval(arg(e, 0));
    return a.truthy() ? a : eval(arg(e, 1));
  }
  const Value a = eval(arg(e, 0)), b = eval(arg(e, 1));
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
    if (a.is_string() && b.is_string()) {
      // A string doubled in a loop would otherwise exhaust memory before the output limit.
      if (a.str_ref().size() + b.str_ref().size() > o_.max_output)
        error(e.line,
              fmt::format("string concatenation beyond {} bytes: giving up", o_.max_output));
      return Value(a.str_ref() + b.str_ref());
    }
    if (a.is_array() && b.is_array()) {
      check_items(a.items().size() + b.items().size(), e.line);
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
    error(e.line, fmt::format("unsupported operand types for {}: '{}' and '{}'", op, a.type_name(),
                              b.type_name()));
  }
  const bool floats = a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat;
  if (op == "/") {
    if (b.as_float() == 0) error(e.line, "division by zero");
    return Value(a.as_float() / b.as_float());
  }
  if (op == "**") {
    if (!floats && b.as_int() >= 0) {
      // Python's integers do not overflow; ours are 64-bit, so overflow is an error, not UB.
      const int64_t base = a.as_int(), n = b.as_int();
      if (base == 0 || base == 1) return Value(n == 0 ? int64_t{1} : base);
      if (base == -1) return Value(n % 2 == 0 ? int64_t{1} : int64_t{-1});
      int64_t r = 1;  // |base| ≥ 2 overflows within 63 steps, so this loop is short
      for (int64_t i = 0; i < n; ++i) {
        if (__builtin_mul_overflow(r, base, &r)) error(e.line, "integer overflow in **");
      }
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
    int64_t r = 0;
    const auto checked = [&](bool overflow) {
      if (overflow) error(e.line, fmt::format("integer overflow in {} {} {}", x, op, y));
      return Value(r);
    };
    if (op == "+") return checked(__builtin_add_overflow(x, y, &r));
    if (op == "-") return checked(__builtin_sub_overflow(x, y, &r));
    if (op == "*") return checked(__builtin_mul_overflow(x, y, &r));
    if (y == 0) error(e.line, "division by zero");
    if (y == -1) {  // x / -1 overflows for the smallest x; x % -1 is 0
      if (op == "%") return Value(int64_t{0});
      return checked(__builtin_sub_overflow(int64_t{0}, x, &r));
    }
    const int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)) ? 1 : 0);  // Python floors
    if (op == "//") return Value(q);
    if (op == "%") return Value(x - q * y);
  }
  error(e.line, "unknown operator " + op);
}

Value Renderer::repeat(const Value& v, int64_t n) {
  // Sized before any work: an empty string or list times 10^18 would otherwise loop for ever.
  n = std::max<int64_t>(n, 0);
  if (v.is_string()) {
    const size_t len = v.str_ref().size();
    if (len > 0 && static_cast<uint64_t>(n) > o_.max_output / len)
      fail("{}: string repetition too long", name_);
    std::string r;
    r.reserve(len * static_cast<size_t>(n));
    for (int64_t i = 0; i < n && len > 0; ++i) r += v.str_ref();
    return Value(r);
  }
  const size_t len = v.items().size();
  if (len > 0 && static_cast<uint64_t>(n) > static_cast<uint64_t>(o_.max_steps) / len)
    fail("{}: list repetition beyond {} items", name_, o_.max_steps);
  Array r;
  for (int64_t i = 0; i < n && len > 0; ++i) r.insert(r.end(), v.items().begin(), v.items().end());
  return Value::array(std::move(r));
}

void Renderer::check_items(size_t n, int line) const {
  if (n > static_cast<size_t>(o_.max_steps))
    error(line, fmt::format("a list beyond {} items: giving up", o_.max_steps));
}

bool Renderer::contains(const Value& haystack, const Value& needle, int line) {
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

int Renderer::compare(const Value& a, const Value& b, int line) {
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
  error(line, fmt::format("'<' not supported between '{}' and '{}'", a.type_name(), b.type_name()));
}

Value Renderer::attribute(const Value& v, const std::string& name, int line) {
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

Value Renderer::index(const Value& v, const Value& key, int line) {
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

Value Renderer::slice(const Value& v, const Value& start_v, const Value& stop_v,
                      const Value& step_v, int line) {
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
}  // namespace mcmoe::jinja::detail

namespace mcmoe::jinja {

using detail::Renderer;
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
