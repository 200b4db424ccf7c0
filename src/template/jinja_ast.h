#pragma once
// The parsed form of a template (internal to template/): statements and expressions, each
// with the line it came from for error messages.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/value.h"

namespace mcmoe::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // args
    kTuple,      // args
    kDict,       // keys (as args[2i]) and values (args[2i+1])
    kAttr,       // a.name
    kIndex,      // a[b]
    kSlice,      // a[b:c:d]: args = {a, start|null, stop|null, step|null}
    kCall,       // a(args, kwargs)
    kFilter,     // args[0] | name(args[1..], kwargs)
    kTest,       // args[0] is [not] name(args[1..])
    kUnary,      // op args[0]: "not", "-", "+"
    kBinary,     // args[0] op args[1]
    kCondition,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  std::string name;  // name, attribute, filter / test, operator
  Value value;
  bool negated = false;  // kTest: "is not"
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  int height = 1;  // 1 + the tallest argument: rendering and destruction recurse this deep
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kRoot,         // body
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches: (condition, body)...; else_body
    kFor,          // targets in expr [if filter]: body; else_body
    kSet,          // targets = expr, or target.attr = expr (attr), or a block (body)
    kMacro,        // name(params = defaults): body
    kFilterBlock,  // {% filter f(args) %}body{% endfilter %}: expr is the filter (args[0] unused)
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;  // kFor: the loop's "if"
  std::vector<std::string> targets;
  std::string attr;  // kSet: namespace attribute
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro (default may be null)
};

// Parses a template; fails naming `name` and the line.
NodePtr parse_template(const std::string& source, const std::string& name);

}  // namespace mcmoe::jinja
