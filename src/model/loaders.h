#pragma once
// Format-specific loaders; friends of Model so they fill it in place.
#include <string>

#include "model/model.h"

namespace mcmoe::model {

class HfLoader {
 public:
  static void load(Model& m, const std::string& dir);
};

class GgufLoader {
 public:
  static void load(Model& m, const std::string& path);
};

}  // namespace mcmoe::model
