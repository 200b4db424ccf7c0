#pragma once
// Format-specific loaders; friends of Model so they fill it in place.
#include <string>

#include "core/mapped_file.h"
#include "model/model.h"

namespace mcmoe::model {

LoadMode choose_load_mode(const std::string& path, const LoadOptions& o);

class HfLoader {
 public:
  static void load(Model& m, const std::string& dir);
};

class GgufLoader {
 public:
  static void load(Model& m, const std::string& path, LoadMode mode);
};

}  // namespace mcmoe::model
