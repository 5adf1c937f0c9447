#include "layers/activity_regularization.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace strata {

ActivityRegularization::ActivityRegularization(ActivityRegularizationOptions o)
    : LayerBase(o.name, "activity_regularization", o.trainable), penalty_(regularizers::L1L2(o.l1, o.l2)) {
  for (float v : {o.l1, o.l2})
    if (!(std::isfinite(v) && v >= 0.f))
      throw std::invalid_argument(fmt::format("ActivityRegularization: l1 and l2 must be non-negative numbers, got {}", v));
}

Tensor ActivityRegularization::call(const Tensor& inputs) {
  // The penalty is the layer's own rather than an activity_regularizer: Keras leaves that key out of the config.
  inputs.graph().add_loss(inputs.id(), penalty_.activity_penalty(inputs).id());
  return inputs;
}

Json ActivityRegularization::get_config() const {
  Json c = Layer::get_config();
  c["l1"] = penalty_.l1;
  c["l2"] = penalty_.l2;
  return c;
}

LayerPtr ActivityRegularization::from_config(const Json& c) {
  config::check_keys(c, "ActivityRegularization", {"l1", "l2"});
  return std::make_shared<ActivityRegularization>(ActivityRegularizationOptions{
      .l1 = config::number(c, "l1", "ActivityRegularization", 0.f), .l2 = config::number(c, "l2", "ActivityRegularization", 0.f), .name = config::name(c), .trainable = config::trainable(c)});
}

}  // namespace strata
