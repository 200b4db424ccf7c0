// Integers from JSON: in range, integral floats accepted; anything the JSON library would
// convert with undefined behaviour (found by fuzzing a trace header) refused with its value.
#include "core/json_read.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/test_util.h"
#include "core/error.h"
#include "core/json_file.h"

namespace mcmoe {
namespace {

using nlohmann::json;

TEST(JsonRead, AcceptsIntegersInRange) {
  EXPECT_EQ(json_integer<int>(json(42)), 42);
  EXPECT_EQ(json_integer<int>(json(-7)), -7);
  EXPECT_EQ(json_integer<int>(json(4096.0)), 4096);  // an integral float counts
  EXPECT_EQ(json_integer<int>(json(2147483647)), 2147483647);
  EXPECT_EQ(json_integer<int>(json(-2147483648.0)), std::numeric_limits<int>::min());
  EXPECT_EQ(json_integer<uint64_t>(json(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(json_integer<int64_t>(json(-9223372036854775807LL - 1)), INT64_MIN);
}

TEST(JsonRead, RefusesWhatTheLibraryWouldConvertWithUndefinedBehaviour) {
  EXPECT_FALSE(json_integer<uint64_t>(json(1.6e85)));  // the fuzzing finding
  EXPECT_FALSE(json_integer<int>(json(3e9)));
  EXPECT_FALSE(json_integer<int>(json(2147483648.0)));
  EXPECT_FALSE(json_integer<int64_t>(json(9223372036854775808.0)));  // 2^63: one past the max
  EXPECT_FALSE(json_integer<uint32_t>(json(-1)));
  EXPECT_FALSE(json_integer<int>(json(UINT64_MAX)));
  EXPECT_FALSE(json_integer<int>(json(1.5)));
  EXPECT_FALSE(json_integer<int>(json(std::numeric_limits<double>::infinity())));
  EXPECT_FALSE(json_integer<int>(json(std::nan(""))));
  EXPECT_FALSE(json_integer<int>(json("12")));
  EXPECT_FALSE(json_integer<int>(json(nullptr)));
}

TEST(JsonRead, ErrorsNameTheFieldAndValue) {
  try {
    json_ints<int>(json::parse("[1, 2, 1e30]"), "trace.txt: line 2: layer_experts");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "trace.txt: line 2: layer_experts[2] = 1e+30 is not an integer in "
                 "[-2147483648, 2147483647]");
  }
  EXPECT_THROW(json_ints<int>(json::parse("{}"), "x"), Error);
}

// A string field read without the library's type_error: any other type, a missing key or a
// value that is not an object reads as absent (fuzz/regressions/stats/format-is-an-array).
TEST(JsonRead, StringFieldsOfAnyShapeReadWithoutThrowing) {
  EXPECT_EQ(json_string(json::parse(R"({"format": "x"})"), "format"), "x");
  EXPECT_EQ(json_string(json::parse(R"({"format": ["x"]})"), "format"), std::nullopt);
  EXPECT_EQ(json_string(json::parse(R"({"format": 3})"), "format"), std::nullopt);
  EXPECT_EQ(json_string(json::parse(R"({"other": "x"})"), "format"), std::nullopt);
  EXPECT_EQ(json_string(json::parse(R"(["format"])"), "format"), std::nullopt);
  EXPECT_EQ(json_string(json::parse("7"), "format"), std::nullopt);
  // A repeated key: the library keeps the last, as the fuzzer's input had it.
  EXPECT_EQ(json_string(json::parse(R"({"format": "x", "format": [1]})"), "format"), std::nullopt);
}

TEST(JsonRead, ParseRefusesNestingDeeperThanTheLimit) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(parse_json(nested(kMaxJsonDepth)).is_array());
  // 128 levels holding a value or a key are as deep as empty ones.
  const std::string deepest_with_value =
      std::string(kMaxJsonDepth - 1, '[') + R"({"k": 1})" + std::string(kMaxJsonDepth - 1, ']');
  EXPECT_TRUE(parse_json(deepest_with_value).is_array());
  try {
    parse_json(nested(200000));  // copying this overflowed the stack
    FAIL();
  } catch (const nlohmann::json::exception& e) {
    EXPECT_NE(std::string(e.what()).find("nesting deeper than 128 levels"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_json<nlohmann::ordered_json>(nested(kMaxJsonDepth + 1)),
               nlohmann::json::exception);
}

// read_json_file: one message per failure, naming the file (or the caller's label).
TEST(JsonFile, ErrorsNameTheFile) {
  test::TempDir dir;
  const std::string good = dir.path("good.json"), bad = dir.path("bad.json"),
                    deep = dir.path("deep.json"), missing = dir.path("missing.json");
  std::ofstream(good) << R"({"b": 1, "a": [2]})";
  std::ofstream(bad) << R"({"b": )";
  std::ofstream(deep) << std::string(1000, '[') << std::string(1000, ']');
  EXPECT_EQ(read_json_file(good)["a"][0], 2);
  EXPECT_EQ(read_ordered_json_file(good).begin().key(), "b");  // file order kept
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // A missing file used to read as an empty stream: "malformed JSON: unexpected end of input".
  EXPECT_EQ(message([&] { read_json_file(missing, "the statistics"); }),
            missing + ": cannot open the statistics");
  EXPECT_EQ(message([&] { read_json_file(bad); }).rfind(bad + ": malformed JSON: ", 0), 0u);
  EXPECT_NE(message([&] {
              read_ordered_json_file(deep, {}, "--tools x");
            }).find("--tools x: malformed JSON"),
            std::string::npos);
  EXPECT_EQ(message([&] { read_json_file(dir.path("")); }),
            dir.path("") + ": not a regular file (a directory)");
}

}  // namespace
}  // namespace mcmoe
