#pragma once
// The values a chat template computes with, as Python and Jinja2 see them: undefined, None,
// bool, int, float, str, list (tuples too), dict (insertion-ordered, like Python's) and
// callables (macros, methods, globals). Printing follows Python's str() and repr(), and
// tojson follows json.dumps, so renders can equal Jinja2's byte for byte.
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mcmoe::jinja {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;
  // The keyword `name`, else positional `index`, else null.
  const Value* get(const std::string& name, size_t index) const;
};
using Function = std::function<Value(const CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  static Value none();
  Value(bool b);  // NOLINT: implicit, as Python's literals
  Value(int v) : Value(static_cast<int64_t>(v)) {}
  Value(int64_t v);
  Value(double v);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value array(Array items = {});
  static Value object(Object items = {});
  static Value function(Function f);
  // A function that keeps `self` alive ([ns].count, d.items): self is recorded beside it so
  // that set_member sees what the function holds (a namespace reached only through a bound
  // method was a shared_ptr cycle that leaked).
  static Value bound_method(Function f, Value self);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return b_; }
  int64_t as_int() const;  // bool, int or float (truncated)
  double as_float() const;
  const std::string& str_ref() const { return s_; }
  Array& items() const { return *a_; }
  Object& fields() const { return *o_; }
  const Function& fn() const { return *fn_; }

  bool truthy() const;
  // Object member, or undefined.
  Value member(const std::string& key) const;
  void set_member(const std::string& key, Value v) const;
  // A namespace() object: the only kind a template may assign attributes of.
  bool is_namespace() const { return namespace_; }
  void mark_namespace() { namespace_ = true; }
  // A list that Python would hold as a generator (what map, select and their kin return):
  // iterable, but len(), reversed() and json.dumps refuse it, so templates that forget
  // "| list" fail as they do in Jinja2.
  bool is_generator() const { return generator_; }
  void mark_generator() { generator_ = true; }

  std::string str() const;   // Python str(); undefined prints as ""
  std::string repr() const;  // Python repr()
  std::string repr_at(int depth) const;  // repr() of a value `depth` levels inside another
  // json.dumps(x, ensure_ascii, indent, separators=None, sort_keys).
  std::string to_json(int indent, bool ensure_ascii, bool sort_keys) const;
  std::string type_name() const;

  friend bool operator==(const Value& a, const Value& b);  // Python ==

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool namespace_ = false;
  bool generator_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<Array> a_;  // a list's items; a bound method's self (one item)
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> fn_;
};

// Python's repr() of a float: the shortest digits that read back, in fixed notation for
// decimal exponents -4..15 (with ".0" when integral), else scientific with 2+ exponent digits.
std::string python_float_repr(double v);
// Python's repr() of a str: single quotes unless the text has ' and no ".
std::string python_string_repr(const std::string& s);

}  // namespace mcmoe::jinja
