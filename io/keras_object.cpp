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

KerasObject parse_layer_attachment(const nlohmann::json& value, const std::string& where, const std::string& kind) {
  KerasObject out;
  if (value.is_string()) {
    out.name = value.get<std::string>();
    out.by_name = true;
  } else if (value.is_object() && value.contains("class_name") && value.at("class_name").is_string()) {
    out.name = value.at("class_name").get<std::string>();
    if (value.contains("config") && !value.at("config").is_null()) {
      if (!value.at("config").is_object()) throw std::invalid_argument(fmt::format("{}: the {}'s config must be an object", where, kind));
      out.config = value.at("config");
    }
  } else if (value.is_object() && value.size() == 1 && (value.begin().value().is_object() || value.begin().value().is_null())) {
    out.name = value.begin().key();
    if (!value.begin().value().is_null()) out.config = value.begin().value();
  } else {
    throw std::invalid_argument(
        fmt::format("{}: a {} must be a name, {{\"class_name\", \"config\"}} or {{Name: {{config}}}}, got {}", where, kind, value.dump()));
  }
  return out;
}

}  // namespace strata::io
