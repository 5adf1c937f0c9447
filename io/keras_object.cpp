#include "io/keras_object.h"

#include <fmt/format.h>

#include <stdexcept>

namespace strata::io {

KerasObject parse_keras_object(const nlohmann::json& identifier, const std::string& what) {
  KerasObject out;
  if (identifier.is_string()) {
    out.name = identifier.get<std::string>();
    out.by_name = true;
  } else if (identifier.is_object() && identifier.contains("class_name") && identifier.at("class_name").is_string()) {
    out.name = identifier.at("class_name").get<std::string>();
    if (identifier.contains("config") && !identifier.at("config").is_null()) {
      if (!identifier.at("config").is_object())
        throw std::invalid_argument(fmt::format("{} {}: 'config' must be an object, got {}", what, out.name, identifier.at("config").dump()));
      out.config = identifier.at("config");
    }
  } else {
    throw std::invalid_argument(fmt::format("{}: expected a name or {{\"class_name\", \"config\"}}, got {}", what,
                                            identifier.dump().substr(0, 200)));
  }
  if (out.name.empty()) throw std::invalid_argument(fmt::format("{}: the name is empty", what));
  return out;
}

}  // namespace strata::io
