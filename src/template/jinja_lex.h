#pragma once
// The lexical side of templates (internal to template/): the source split into text, output
// and statement segments, with Jinja's whitespace control and transformers' trim_blocks /
// lstrip_blocks applied; a tag's content split into tokens.
#include <string>
#include <vector>

#include "template/value.h"

namespace mcmoe::jinja {

struct Segment {
  enum class Kind { kText, kOutput, kStatement } kind;
  std::string content;
  int line;
};

// Fails naming `name` and the line of an unclosed tag.
std::vector<Segment> split_segments(const std::string& src, const std::string& name);

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  Value value;
};

// The tokens of one tag's content, ending with kEnd; fails naming `name` and `line`.
std::vector<Token> tokenize(const std::string& s, const std::string& name, int line);

}  // namespace mcmoe::jinja
