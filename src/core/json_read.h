#pragma once
// Reading JSON that strangers wrote (model files, request bodies) without the two ways
// nlohmann/json lets it harm the reader, both found by fuzzing:
// - get<int>() converts a floating-point number to the integer unchecked, and 1e30 (or 3e9
//   into an int) is then undefined behaviour (a routing trace's header). Every reader that
//   takes an integer goes through json_integer / json_int / json_ints.
// - The parser itself does not recurse, but copying, comparing, converting and destroying a
//   value do: a request body of 200,000 nested arrays overflowed the stack. Every parse goes
//   through parse_json, which refuses nesting deeper than kMaxJsonDepth.
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace mcmoe {

// Far deeper than any model file or request (tokenizer.json nests about 6 levels).
inline constexpr int kMaxJsonDepth = 128;

// Json::parse(input), with nesting beyond kMaxJsonDepth refused by the library's own
// exception type (json::exception), so each reader reports it as it reports other malformed
// JSON.
template <typename Json = nlohmann::json, typename Input>
Json parse_json(Input&& input) {
  using Event = typename Json::parse_event_t;
  return Json::parse(std::forward<Input>(input), [](int depth, Event event, Json&) {
    // A container's start event has depth = the containers around it (0 at the top).
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth) {
      throw Json::other_error::create(
          501, "nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels", nullptr);
    }
    return true;
  });
}

// `v` as a T when it is a number with an integral value within T's range (a float such as
// 4096.0 counts); nullopt otherwise.
template <typename T, typename Json>
std::optional<T> json_integer(const Json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if (v.is_number_unsigned()) {
    const auto u = v.template get<uint64_t>();
    return std::in_range<T>(u) ? std::optional<T>(static_cast<T>(u)) : std::nullopt;
  }
  if (v.is_number_integer()) {
    const auto i = v.template get<int64_t>();
    return std::in_range<T>(i) ? std::optional<T>(static_cast<T>(i)) : std::nullopt;
  }
  if (v.is_number_float()) {
    const double d = v.template get<double>();
    const double bound = std::ldexp(1.0, std::numeric_limits<T>::digits);  // T's max + 1
    if (d != std::floor(d) || d >= bound || d < (std::is_signed_v<T> ? -bound : 0.0))
      return std::nullopt;
    return static_cast<T>(d);
  }
  return std::nullopt;
}

// obj[key] when obj is an object holding a string there; nullopt when it is not an object,
// has no such key, or holds another type. (nlohmann's obj.value(key, "") throws a type_error
// for a non-string value or a non-object: a calibration file whose "format" was an array
// ended a process that way, found by fuzzing.)
template <typename Json>
std::optional<std::string> json_string(const Json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return std::nullopt;
  return it->template get<std::string>();
}

// As json_integer, failing with "WHAT = VALUE is not an integer in [min, max]".
template <typename T, typename Json>
T json_int(const Json& v, const std::string& what) {
  if (const auto x = json_integer<T>(v)) return *x;
  fail("{} = {} is not an integer in [{}, {}]", what, v.dump(), std::numeric_limits<T>::min(),
       std::numeric_limits<T>::max());
}

// A JSON array of such integers.
template <typename T, typename Json>
std::vector<T> json_ints(const Json& v, const std::string& what) {
  if (!v.is_array()) fail("{} = {} is not an array of integers", what, v.dump().substr(0, 80));
  std::vector<T> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out.push_back(json_int<T>(v[i], what + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace mcmoe
