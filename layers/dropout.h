// Dropout: inverted dropout while training (kept values scaled by 1 / (1 - rate)), identity otherwise.
#pragma once

#include <optional>

#include "layers/layer.h"

namespace strata {

struct DropoutOptions {
  std::optional<std::uint64_t> seed;  // unset: drawn from the global seed
  std::string name;
  bool trainable = true;
};

class Dropout : public LayerBase<Dropout> {
 public:
  explicit Dropout(float rate, DropoutOptions options = {});
  std::string class_name() const override { return "Dropout"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  float rate_;
  std::optional<std::uint64_t> user_seed_;
  std::uint64_t seed_;
};

}  // namespace strata
