// Keras's weight constraints MaxNorm, NonNeg, UnitNorm and MinMaxNorm: a layer's <key>_constraint argument
// (kernel, bias, recurrent, ...) projects the weight it names after each optimizer update, as Keras 3's
// optimizer.apply does.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "graph/graph.h"

namespace strata {

struct Constraint : VariableConstraint {
  std::string class_name;  // "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm" or "Constraint" (the identity)
  float min_value = 0.f, max_value = 0.f, rate = 1.f;
  // The axes whose elements form one norm: an int, a list of ints or null (all), as Keras configs hold it.
  nlohmann::json axis = 0;

  // Keras's serialized form, {"module": "keras.constraints", "class_name": ..., "config": ...}.
  nlohmann::json to_json() const;
  // The projected weight; throws naming the shape when an axis does not fit it.
  Tensor operator()(const Tensor& weight) const override;
};

using ConstraintPtr = std::shared_ptr<const Constraint>;

namespace constraints {
ConstraintPtr MaxNorm(float max_value = 2.f, nlohmann::json axis = 0);
ConstraintPtr NonNeg();
ConstraintPtr UnitNorm(nlohmann::json axis = 0);
ConstraintPtr MinMaxNorm(float min_value = 0.f, float max_value = 1.f, float rate = 1.f, nlohmann::json axis = 0);
}  // namespace constraints

// A constraint as Keras configs give it: a name ("max_norm", "NonNeg", ...; Keras's defaults), a serialized
// object (Keras 3's, or Keras 2's {"class_name", "config"}) or the YAML front door's {MaxNorm: {max_value: 3}};
// null gives none. `where` names the layer and key in errors.
ConstraintPtr constraint_from_json(const nlohmann::json& value, const std::string& where);

}  // namespace strata
