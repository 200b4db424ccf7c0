// The builtins of the template language as chat templates use them:
// Filters: abs, capitalize, count, default (d), dictsort, first, float, indent, int, items,
// join, last, length, list, lower, map, max, min, reject, rejectattr, replace, reverse,
// round, safe, select, selectattr, sort, string, sum, title, tojson, trim, unique, upper,
// wordcount. Tests: boolean, callable, defined, divisibleby, eq (equalto, ==), even, false,
// float, ge, gt, in, integer, iterable, le, lower, lt, mapping, ne, none, number, odd,
// sameas, sequence, string, true, undefined, upper. Methods: str (strip, lstrip, rstrip,
// split, rsplit, splitlines, startswith, endswith, upper, lower, title, capitalize, replace,
// find, count, join, format_map-free format with {}), dict (items, keys, values, get), list
// (index, count). (Globals range, namespace, dict, raise_exception, strftime_now:
// jinja_render.cpp.)
#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "template/jinja_renderer.h"

namespace mcmoe::jinja::detail {

Value Renderer::call_method(const Value& self, const std::string& name, const CallArgs& a,
                            int line) {
  const Value* a0 = a.get("", 0);
  if (self.is_string()) {
    const std::string& s = self.str_ref();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const std::string chars = strip_chars(a);
      size_t b = 0, e = s.size();
      if (name != "rstrip")
        b = s.find_first_not_of(chars) == std::string::npos ? s.size() : s.find_first_not_of(chars);
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
      for (size_t p = 0; !sub.empty() && (p = s.find(sub, p)) != std::string::npos; p += sub.size())
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
      return Value(static_cast<int64_t>(std::count(self.items().begin(), self.items().end(), *a0)));
    }
  }
  error(line, "'" + self.type_name() + "' object has no method '" + name + "'");
}

Value Renderer::filter(const std::string& name, const Value& v, const CallArgs& a, int line) {
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
    const bool use_default = v.is_undefined() || (bool_mode && bool_mode->truthy() && !v.truthy());
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
    const int64_t spaces = indent && indent->is_number() ? indent->as_int() : -1;
    if (spaces > 64) error(line, fmt::format("tojson indent {}: expected at most 64", spaces));
    return Value(v.to_json(spaces < 0 ? -1 : static_cast<int>(spaces), ascii && ascii->truthy(),
                           sort && sort->truthy()));
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
    if (v.kind() == Value::Kind::kFloat) return Value(std::fabs(v.as_float()));
    if (v.as_int() == INT64_MIN) error(line, "integer overflow in abs");
    return Value(static_cast<int64_t>(std::llabs(v.as_int())));
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
    const int64_t spaces = width && !width->is_string() ? width->as_int() : 4;
    if (spaces < 0 || spaces > 1024)
      error(line, fmt::format("indent width {}: expected 0..1024", spaces));
    const std::string pad = width && width->is_string()
                                ? width->str_ref()
                                : std::string(static_cast<size_t>(spaces), ' ');
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
    const std::string test_name = a.positional.size() > test_at ? a.positional[test_at].str() : "";
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
    Array items = name == "dictsort" ? call_method(v, "items", {}, line).items() : iterate(v, line);
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

Value Renderer::attribute_path(const Value& v, const std::string& path, int line) {
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

bool Renderer::test(const std::string& name, const Value& v, const CallArgs& a, int line) {
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
  if (name == "divisibleby")  // (x % -1 overflows for the smallest x; every x divides by -1)
    return a0->as_int() == -1 || (a0->as_int() != 0 && v.as_int() % a0->as_int() == 0);
  error(line, "unknown test '" + name + "'");
}
}  // namespace mcmoe::jinja::detail
