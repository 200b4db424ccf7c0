#include "cli/args.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace mcmoe::cli {

std::string usage_text(const CommandSpec& spec) {
  std::string out = fmt::format("mcmoe {}: {}\n\nflags:\n", spec.name, spec.synopsis);
  size_t width = 0;
  const auto head = [](const FlagSpec& f) {
    return f.value ? fmt::format("{} {}", f.name, f.value) : std::string(f.name);
  };
  for (const FlagSpec& f : spec.flags) width = std::max(width, head(f).size());
  for (const FlagSpec& f : spec.flags) {
    out += fmt::format("  {:<{}}  {}", head(f), width, f.help);
    if (f.def && *f.def) out += fmt::format(" (default: {})", f.def);
    out += "\n";
  }
  return out;
}

namespace {

std::set<std::string> names(const FlagTable& t, bool switches) {
  std::set<std::string> out;
  for (const FlagSpec& f : t) {
    if ((f.value == nullptr) == switches) out.insert(f.name);
  }
  return out;
}

bool wants_help(const std::vector<std::string>& argv) {
  return std::find_if(argv.begin(), argv.end(), [](const std::string& a) {
           return a == "--help" || a == "-h";
         }) != argv.end();
}

}  // namespace

Args::Args(const std::vector<std::string>& argv, const CommandSpec& spec)
    : Args(wants_help(argv) ? std::vector<std::string>{} : argv, names(spec.flags, false),
           names(spec.flags, true)) {
  if (wants_help(argv)) {
    std::fputs(usage_text(spec).c_str(), stdout);
    throw HelpShown{};
  }
}

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
           const std::set<std::string>& switch_flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      std::string flag = a, value;
      bool inline_value = false;
      if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        flag = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      if (value_flags.count(flag)) {
        if (!inline_value) {
          if (i + 1 >= argv.size()) fail("flag {} needs a value", flag);
          value = argv[++i];
        }
        values_[flag] = value;
      } else if (switch_flags.count(flag) && !inline_value) {
        switches_.insert(flag);
      } else {
        std::string known;
        for (const auto& f : value_flags) known += " " + f;
        for (const auto& f : switch_flags) known += " " + f;
        fail("unknown flag {} (known:{})", flag, known);
      }
    } else {
      positional_.push_back(a);
    }
  }
}

std::string Args::str(const std::string& flag, const std::string& def) const {
  auto it = values_.find(flag);
  return it == values_.end() ? def : it->second;
}

std::string Args::required(const std::string& flag, const std::string& what) const {
  auto it = values_.find(flag);
  if (it == values_.end()) fail("missing {} ({} is required)", what, flag);
  return it->second;
}

long long Args::integer(const std::string& flag, long long def, long long min, long long max) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return def;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (errno || end == it->second.c_str() || *end != '\0') fail("{}: expected an integer, found '{}'", flag, it->second);
  if (v < min || v > max) fail("{}: {} is out of range [{}, {}]", flag, v, min, max);
  return v;
}

double Args::number(const std::string& flag, double def, double min, double max) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return def;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end != '\0' || !std::isfinite(v)) fail("{}: expected a number, found '{}'", flag, it->second);
  if (v < min || v > max) fail("{}: {} is out of range [{}, {}]", flag, v, min, max);
  return v;
}

unsigned long long parse_bytes(const std::string& s, const std::string& flag) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) fail("{}: expected a size such as 512MiB, found '{}'", flag, s);
  const std::string unit = end;
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else fail("{}: unknown size unit '{}' in '{}' (use B, KiB, MiB, GiB, KB, MB, GB)", flag, unit, s);
  // strtod takes "inf", "nan" and 1e30: converting those to an integer is undefined.
  if (!(v * mult < 0x1p63)) fail("{}: size '{}' is not a byte count below 2^63", flag, s);
  return static_cast<unsigned long long>(v * mult);
}

unsigned long long parse_bytes_or_percent(const std::string& s, unsigned long long whole, const std::string& flag) {
  if (!s.empty() && s.back() == '%') {
    char* end = nullptr;
    const double pct = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() - 1 || !(pct > 0) || pct > 100) {
      fail("{}: expected a percentage in (0, 100], found '{}'", flag, s);
    }
    return static_cast<unsigned long long>(static_cast<long double>(whole) * pct / 100.0);
  }
  return parse_bytes(s, flag);
}

}  // namespace mcmoe::cli
