#pragma once
// Errors: the library throws mcmoe::Error with a one-line message that names the file,
// key or tensor and the expected versus found value. It never calls exit(); the CLI turns
// an Error into "error: <message>" and exit code 1.
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace mcmoe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace mcmoe
