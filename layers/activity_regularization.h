// ActivityRegularization: the input unchanged, and L1L2(l1, l2)'s penalty on it divided by the batch size
// added to the loss of the model the call belongs to (Keras's layer of that name).
#pragma once

#include "layers/layer.h"

namespace strata {

struct ActivityRegularizationOptions {
  float l1 = 0.f, l2 = 0.f;
  std::string name;
  bool trainable = true;
};

class ActivityRegularization : public LayerBase<ActivityRegularization> {
 public:
  explicit ActivityRegularization(ActivityRegularizationOptions options = {});
  std::string class_name() const override { return "ActivityRegularization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  Regularizer penalty_;
};

}  // namespace strata
