#pragma once
// One way to read a JSON file, for every reader of one (config.json, tokenizer.json,
// tokenizer_config.json, the safetensors index, calibration statistics, ODP thresholds, the
// template command's inputs): opened only when it is a regular file, parsed through
// parse_json (nesting limit), and the same two errors naming the file.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace mcmoe {

// The document in `path`. Fails "LABEL: cannot open[ WHAT]" or "LABEL: malformed JSON: ..."
// where LABEL is `label`, or the path when it is empty (e.g. "--messages m.json").
nlohmann::json read_json_file(const std::string& path, std::string_view what = {},
                              std::string_view label = {});
// The same, keeping the objects' key order (templates render objects in file order).
nlohmann::ordered_json read_ordered_json_file(const std::string& path, std::string_view what = {},
                                              std::string_view label = {});

}  // namespace mcmoe
