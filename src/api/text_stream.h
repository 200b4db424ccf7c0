#pragma once
// The text of a generation as it grows token by token, released to a client only when it is
// final: a tail that may still become a stop string, or an incomplete UTF-8 sequence, is
// held back. A stop string ends the text where it begins (the stop string itself is not
// part of the text, as in OpenAI's API).
#include <string>
#include <string_view>
#include <vector>

namespace mcmoe::api {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops);
  // Appends a token's bytes; returns true when a stop string now occurs (the text is then cut
  // before it and nothing more should be appended).
  bool append(const std::string& piece);
  // Text that became final since the last call. With `all`, everything left (the generation
  // ended), incomplete UTF-8 included.
  std::string take(bool all = false);
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stops_;
  std::string text_;
  size_t released_ = 0;
  bool stopped_ = false;
};

// Bytes at the end of s that start a UTF-8 sequence not yet complete (0..3).
size_t incomplete_utf8_tail(std::string_view s);

}  // namespace mcmoe::api
