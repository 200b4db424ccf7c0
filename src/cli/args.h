#pragma once
// Minimal command-line parsing for the subcommands: flags with values, boolean switches,
// positionals. Unknown flags and malformed numbers are errors that name the flag.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mcmoe::cli {

// One flag of a command: the table drives both parsing and `mcmoe COMMAND --help`.
struct FlagSpec {
  const char* name;   // "--ctx", "-m"
  const char* value;  // what the value is ("N", "PATH"); nullptr: a switch
  const char* def;    // the default as shown ("" for none)
  const char* help;
};
using FlagTable = std::vector<FlagSpec>;
// A command's flag table: its own flags, then shared groups appended (session, offloading...).
struct CommandSpec {
  const char* name;      // "run"
  const char* synopsis;  // one line: what it does
  FlagTable flags;
};
// The text `mcmoe COMMAND --help` prints: synopsis, then every flag with its value, default
// and help, aligned.
std::string usage_text(const CommandSpec& spec);
// Thrown by Args after it printed a command's --help (main exits 0).
struct HelpShown {};

class Args {
 public:
  // Parses argv against the command's table; -h / --help prints usage_text and throws
  // HelpShown.
  Args(const std::vector<std::string>& argv, const CommandSpec& spec);

  bool has(const std::string& flag) const { return values_.count(flag) || switches_.count(flag); }
  std::string str(const std::string& flag, const std::string& def) const;
  std::string required(const std::string& flag, const std::string& what) const;
  long long integer(const std::string& flag, long long def, long long min, long long max) const;
  double number(const std::string& flag, double def, double min, double max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  // value_flags take a value ("-m", "--ctx"); switch_flags do not ("--stats").
  Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
       const std::set<std::string>& switch_flags);

  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

// Parses sizes like "512MiB", "2GB", "1048576".
unsigned long long parse_bytes(const std::string& s, const std::string& flag);
// A size, or a percentage of `whole` ("50%"): --expert-cache and cachesim --budget.
unsigned long long parse_bytes_or_percent(const std::string& s, unsigned long long whole, const std::string& flag);

}  // namespace mcmoe::cli
