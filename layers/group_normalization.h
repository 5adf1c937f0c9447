// GroupNormalization and UnitNormalization as Keras 3. GroupNormalization normalises each sample over groups
// of channels (and every other non-batch axis) by the group's mean and variance, then applies gamma and beta
// per channel; groups = 1 is layer normalisation over everything, groups = channels instance normalisation.
// UnitNormalization scales each sample to unit L2 norm along `axis`.
#pragma once

#include "layers/layer.h"

namespace strata {

struct GroupNormalizationOptions {
  int groups = 32;  // -1: one group per channel
  int axis = -1;    // the channel axis
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
  Json beta_initializer = "zeros";
  Json gamma_initializer = "ones";
  std::string name;
  bool trainable = true;
};

class GroupNormalization : public LayerBase<GroupNormalization> {
 public:
  explicit GroupNormalization(GroupNormalizationOptions options = {});
  std::string class_name() const override { return "GroupNormalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  GroupNormalizationOptions options_;
  int axis_ = 0, groups_ = 0;  // resolved against the input
  VariablePtr gamma_, beta_;
};

class UnitNormalization : public LayerBase<UnitNormalization> {
 public:
  explicit UnitNormalization(std::vector<int> axis = {-1}, LayerOptions options = {});
  std::string class_name() const override { return "UnitNormalization"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  bool supports_masking() const override { return true; }

 private:
  std::vector<int> axis_;
};

}  // namespace strata
