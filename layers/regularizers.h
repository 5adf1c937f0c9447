// Keras's weight regularizers L1, L2 and L1L2: a layer's <key>_regularizer argument (kernel, bias,
// recurrent, ...) adds l1 * sum(|w|) + l2 * sum(w^2) of the weight it names to the model's loss, in
// training and evaluation, as Keras 3 adds model.losses.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "graph/graph.h"

namespace strata {

struct Regularizer {
  std::string class_name = "L1L2";  // "L1", "L2" or "L1L2", as Keras writes it back
  float l1 = 0.f, l2 = 0.f;

  // Keras's serialized form, {"module": "keras.regularizers", "class_name": ..., "config": ...}.
  nlohmann::json to_json() const;
  // The penalty on `weight`, a scalar.
  Tensor penalty(const Tensor& weight) const;
  // As an activity_regularizer on a layer's output: the penalty divided by the batch size (the first
  // dimension, known only when the step runs), as Keras 3 normalises it.
  Tensor activity_penalty(const Tensor& output) const;
};

namespace regularizers {
Regularizer L1(float l1 = 0.01f);
Regularizer L2(float l2 = 0.01f);
Regularizer L1L2(float l1 = 0.f, float l2 = 0.f);
}  // namespace regularizers

// A regularizer as Keras configs give it: a name ("l1", "l2", "L1L2", ...; Keras's defaults), a
// serialized object (Keras 3's, or Keras 2's {"class_name", "config"}) or the YAML front door's
// {L2: {l2: 0.001}}; null gives none. `where` names the layer and key in errors.
std::optional<Regularizer> regularizer_from_json(const nlohmann::json& value, const std::string& where);

}  // namespace strata
