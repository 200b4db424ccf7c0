#include "api/text_stream.h"

#include <algorithm>

namespace mcmoe::api {

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

bool TextStream::append(const std::string& piece) {
  if (stopped_) return true;
  // A stop string can only begin in the unreleased tail or just before it.
  size_t longest = 0;
  for (const std::string& s : stops_) longest = std::max(longest, s.size());
  const size_t from = text_.size() >= longest ? text_.size() - longest + 1 : 0;
  text_ += piece;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = text_.find(s, std::min(from, text_.size()));
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut == std::string::npos) return false;
  text_.resize(std::max(cut, released_));
  stopped_ = true;
  return true;
}

size_t incomplete_utf8_tail(std::string_view s) {
  // Walk back over at most 3 continuation bytes to a lead byte; the sequence is incomplete
  // when the lead announces more bytes than follow it.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

std::string TextStream::take(bool all) {
  size_t end = text_.size();
  if (!all) {
    if (!stopped_) {
      // Hold back the longest tail that is a proper prefix of some stop string.
      size_t hold = 0;
      for (const std::string& s : stops_) {
        for (size_t k = std::min(s.size() - 1, text_.size() - released_); k > hold; --k) {
          if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
            hold = k;
            break;
          }
        }
      }
      end -= hold;
    }
    end -= incomplete_utf8_tail(std::string_view(text_).substr(0, end));
  }
  if (end <= released_) return {};
  std::string out = text_.substr(released_, end - released_);
  released_ = end;
  return out;
}

}  // namespace mcmoe::api
