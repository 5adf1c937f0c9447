// Keras's serialized objects: a bare name ("adam") or {"class_name": ..., "config": {...}}, as Keras writes
// initializers, optimizers, losses, metrics and schedules in its JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace strata::io {

struct KerasObject {
  std::string name;  // the bare name or the class_name
  nlohmann::json config = nlohmann::json::object();
  bool by_name = false;  // given as a bare string
};

// Throws naming `what` ("initializer", "loss", ...) when `identifier` is neither form.
KerasObject parse_keras_object(const nlohmann::json& identifier, const std::string& what);

// The same forms and the YAML front door's {Name: {config}} (or {Name: null}), for a layer's regularizers and
// constraints: errors start with `where` (layer and key) and name the `kind` ("regularizer", "constraint").
KerasObject parse_layer_attachment(const nlohmann::json& value, const std::string& where, const std::string& kind);

}  // namespace strata::io
