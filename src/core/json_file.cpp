#include "core/json_file.h"

#include <fstream>

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"

namespace mcmoe {

namespace {

template <typename Json>
Json read_file_as(const std::string& path, std::string_view what, std::string_view label) {
  const std::string name = label.empty() ? path : std::string(label);
  std::ifstream in = open_regular_file(path, std::ios::binary);
  if (!in) fail("{}: cannot open{}{}", name, what.empty() ? "" : " ", what);
  try {
    return parse_json<Json>(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", name, e.what());
  }
}

}  // namespace

nlohmann::json read_json_file(const std::string& path, std::string_view what,
                              std::string_view label) {
  return read_file_as<nlohmann::json>(path, what, label);
}

nlohmann::ordered_json read_ordered_json_file(const std::string& path, std::string_view what,
                                              std::string_view label) {
  return read_file_as<nlohmann::ordered_json>(path, what, label);
}

}  // namespace mcmoe
