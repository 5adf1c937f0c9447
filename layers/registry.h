// The one registry from Keras class names to layers: the YAML and Keras-JSON front doors both use it.
#pragma once

#include <string>
#include <vector>

#include "layers/layer.h"

namespace strata {

// A layer from {"class_name": ..., "config": {...}} (Keras's serialization) or from a class name and its
// config. Unknown classes throw with a suggestion for near misses ("did you mean 'Dense'?").
LayerPtr layer_from_config(const std::string& class_name, const Json& config);
LayerPtr layer_from_json(const Json& serialized);
std::vector<std::string> registered_layers();

// The closest of `candidates` to `word` by edit distance, or empty when none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace strata
