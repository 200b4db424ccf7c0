#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace mcmoe::jinja {

const Value* CallArgs::get(const std::string& name, size_t index) const {
  for (const auto& [k, v] : keywords) {
    if (k == name) return &v;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value::Value(bool b) : kind_(Kind::kBool), b_(b), i_(b ? 1 : 0) {}
Value::Value(int64_t v) : kind_(Kind::kInt), i_(v) {}
Value::Value(double v) : kind_(Kind::kFloat), f_(v) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}

Value Value::array(Array items) {
  Value v;
  v.kind_ = Kind::kArray;
  v.a_ = std::make_shared<Array>(std::move(items));
  return v;
}

Value Value::object(Object items) {
  Value v;
  v.kind_ = Kind::kObject;
  v.o_ = std::make_shared<Object>(std::move(items));
  return v;
}

Value Value::function(Function f) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.fn_ = std::make_shared<Function>(std::move(f));
  return v;
}

Value Value::bound_method(Function f, Value self) {
  Value v = function(std::move(f));
  v.a_ = std::make_shared<Array>(Array{std::move(self)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      for (const auto& e : j) a.push_back(from_json(e));
      return array(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      for (const auto& [k, e] : j.items()) o.emplace_back(k, from_json(e));
      return object(std::move(o));
    }
    default:
      return Value();
  }
}

int64_t Value::as_int() const {
  if (kind_ == Kind::kFloat) return static_cast<int64_t>(f_);
  return i_;
}

double Value::as_float() const {
  return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_);
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0;
    case Kind::kString:
      return !s_.empty();
    case Kind::kArray:
      return !a_->empty();
    case Kind::kObject:
      return !o_->empty();
    case Kind::kFunction:
      return true;
  }
  return false;
}

Value Value::member(const std::string& key) const {
  if (kind_ != Kind::kObject) return Value();
  for (const auto& [k, v] : *o_) {
    if (k == key) return v;
  }
  return Value();
}

namespace {
// Printing, JSON and == recurse into lists and dicts, and so does destroying a value: a value
// nested deeper than this, or one that contains itself, is an error instead of a stack
// overflow (set_member keeps values from becoming either).
constexpr int kMaxValueDepth = 512;

void check_value_depth(int depth) {
  if (depth > kMaxValueDepth)
    fail("a value nested deeper than {} levels, or containing itself", kMaxValueDepth);
}
}  // namespace

void Value::set_member(const std::string& key, Value v) const {
  // The one way a template changes a value in place ({% set ns.attr = v %}), so the one place
  // a value could come to contain itself (a shared_ptr cycle: leaked, and printing it never
  // ends) or nest without bound (a loop wrapping ns.x one level deeper each time: destroying
  // it would overflow the stack). Both are refused here, walking v without recursion.
  std::vector<std::pair<const Value*, int>> todo{{&v, 0}};
  while (!todo.empty()) {
    const auto [x, depth] = todo.back();
    todo.pop_back();
    check_value_depth(depth);
    if (x->kind_ == Kind::kObject) {
      if (x->o_ == o_)
        fail("a value cannot contain itself ('{}' set to a value that holds its owner)", key);
      for (const auto& [k, item] : *x->o_) todo.emplace_back(&item, depth + 1);
    } else if (x->kind_ == Kind::kArray || (x->kind_ == Kind::kFunction && x->a_)) {
      for (const auto& item : *x->a_) todo.emplace_back(&item, depth + 1);
    }
  }
  for (auto& [k, old] : *o_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  o_->emplace_back(key, std::move(v));
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  // Shortest round-trip digits in scientific form: d.ddde±X.
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  const size_t e = sci.find('e');
  const int exp = std::stoi(sci.substr(e + 1));
  std::string mant = sci.substr(0, e);
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      std::string ip = digits.substr(0, std::min<size_t>(digits.size(), exp + 1));
      while (static_cast<int>(ip.size()) < exp + 1) ip += '0';
      std::string fp = static_cast<int>(digits.size()) > exp + 1 ? digits.substr(exp + 1) : "0";
      out = ip + "." + fp;
    } else {
      out = "0." + std::string(-exp - 1, '0') + digits;
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return neg ? "-" + out : out;
}

std::string python_string_repr(const std::string& s) {
  const char quote =
      s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + quote;
}

std::string Value::str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return s_;
    default:
      return repr();
  }
}

std::string Value::repr() const {
  return repr_at(0);
}

std::string Value::repr_at(int depth) const {
  check_value_depth(depth);
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return b_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return python_float_repr(f_);
    case Kind::kString:
      return python_string_repr(s_);
    case Kind::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < a_->size(); ++i) out += (i ? ", " : "") + (*a_)[i].repr_at(depth + 1);
      return out + "]";
    }
    case Kind::kObject: {
      std::string out = namespace_ ? "<Namespace {" : "{";
      for (size_t i = 0; i < o_->size(); ++i) {
        out += (i ? ", " : "") + python_string_repr((*o_)[i].first) + ": " +
               (*o_)[i].second.repr_at(depth + 1);
      }
      return out + (namespace_ ? "}>" : "}");
    }
    case Kind::kFunction:
      return "<function>";
  }
  return "";
}

namespace {

void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    char b[16];
    if (c < 0x20) {
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else if (c < 0x80 || !ensure_ascii) {
      out += static_cast<char>(c);
    } else {  // one UTF-8 sequence as \uXXXX (a surrogate pair above the BMP)
      int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      uint32_t cp = c & (0x7f >> len);
      for (int k = 1; k < len && i + 1 < s.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else {
        std::snprintf(b, sizeof b, "\\u%04x", cp);
      }
      out += b;
    }
  }
  out += '"';
}

void json_value(const Value& v, int indent, bool ensure_ascii, bool sort_keys, int depth,
                std::string& out) {
  check_value_depth(depth);
  const std::string nl =
      indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent * (depth + 1)), ' ') : "";
  const std::string nl_end =
      indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent * depth), ' ') : "";
  const char* item_sep = indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat: {
      const double f = v.as_float();
      out += std::isnan(f)   ? "NaN"
             : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity")
                             : python_float_repr(f);
      return;
    }
    case Value::Kind::kString:
      json_string(v.str_ref(), ensure_ascii, out);
      return;
    case Value::Kind::kArray: {
      if (v.is_generator()) fail("tojson: Object of type generator is not JSON serializable");
      if (v.items().empty()) {
        out += "[]";
        return;
      }
      out += "[";
      for (size_t i = 0; i < v.items().size(); ++i) {
        out += (i ? item_sep : "") + nl;
        json_value(v.items()[i], indent, ensure_ascii, sort_keys, depth + 1, out);
      }
      out += nl_end + "]";
      return;
    }
    case Value::Kind::kObject: {
      if (v.fields().empty()) {
        out += "{}";
        return;
      }
      Object fields = v.fields();
      if (sort_keys) {
        std::stable_sort(fields.begin(), fields.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out += "{";
      for (size_t i = 0; i < fields.size(); ++i) {
        out += (i ? item_sep : "") + nl;
        json_string(fields[i].first, ensure_ascii, out);
        out += ": ";
        json_value(fields[i].second, indent, ensure_ascii, sort_keys, depth + 1, out);
      }
      out += nl_end + "}";
      return;
    }
    case Value::Kind::kFunction:
      fail("tojson: a function is not JSON serializable");
  }
}

}  // namespace

std::string Value::to_json(int indent, bool ensure_ascii, bool sort_keys) const {
  std::string out;
  json_value(*this, indent, ensure_ascii, sort_keys, 0, out);
  return out;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kArray:
      return "list";
    case Kind::kObject:
      return "dict";
    case Kind::kFunction:
      return "function";
  }
  return "?";
}

namespace {
bool equal_at(const Value& a, const Value& b, int depth) {
  check_value_depth(depth);
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.kind() == K::kFloat || b.kind() == K::kFloat) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone:
      return true;
    case K::kString:
      return a.str_ref() == b.str_ref();
    case K::kArray: {
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!equal_at(a.items()[i], b.items()[i], depth + 1)) return false;
      }
      return true;
    }
    case K::kObject: {
      if (a.fields().size() != b.fields().size()) return false;
      for (const auto& [k, v] : a.fields()) {
        if (!equal_at(b.member(k), v, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
}  // namespace

bool operator==(const Value& a, const Value& b) {
  return equal_at(a, b, 0);
}

}  // namespace mcmoe::jinja
