#pragma once
// The fuzz targets: what each libFuzzer harness (fuzz/fuzz_main.cpp) does with one input,
// shared with the regression test (tests/fuzz/fuzz_regression_test.cpp), which replays every
// saved finding in fuzz/regressions/TARGET/ through the same code.
//
// The readers under test take paths, so each input is written to a file in a private
// directory of /dev/shm (tmpfs) before it is parsed. A target passes when the reader accepts
// the input or throws mcmoe::Error, the library's one error type, whose message names the
// file, field and value. Any other exception (std::out_of_range from an unchecked .at(), a
// JSON library exception that escaped unconverted, std::bad_alloc) propagates out of
// run_target(): it means a check is missing, even when nothing crashed.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mcmoe::fuzz {

enum class Outcome { kAccepted, kRefused };

// The targets' names, sorted (fuzz/targets.txt lists the same, for CMake and fuzz.sh).
const std::vector<std::string>& target_names();

// What a target sets up once (http_request loads its model), done before the first input so
// that the set-up is not timed as part of it (libFuzzer's -timeout).
void prepare_target(const std::string& name);

// Runs target `name` on `input`. Returns whether the input was accepted or refused with
// mcmoe::Error (its message in `*error` when given); any other exception propagates.
Outcome run_target(const std::string& name, std::span<const uint8_t> input,
                   std::string* error = nullptr);

}  // namespace mcmoe::fuzz
