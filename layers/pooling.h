// Pooling layers (channels_last): MaxPooling1D/2D and AveragePooling1D/2D over windows (strides default to
// the pool size; "valid" or "same" padding, padded positions ignored), and the global poolings.
#pragma once

#include <optional>

#include "layers/conv.h"

namespace strata {

struct PoolingOptions {
  std::optional<IntTuple> strides;  // unset: the pool size
  std::string padding = "valid";
  std::string name;
  bool trainable = true;
};

class Pooling : public Layer {
 public:
  Json get_config() const override;

 protected:
  Pooling(bool max, int rank, const IntTuple& pool_size, PoolingOptions options, const char* prefix);
  Tensor call(const Tensor& inputs) override;
  static PoolingOptions options_from_config(const Json& config, const std::string& class_name, int rank, std::vector<int>& pool_size);

 private:
  bool max_;
  int rank_;
  std::vector<int> pool_size_, strides_;
  std::string padding_;
};

#define STRATA_POOLING_LAYER(Class, is_max, rank, prefix, default_pool)                                      \
  class Class : public Pooling {                                                                              \
   public:                                                                                                    \
    explicit Class(const IntTuple& pool_size = default_pool, PoolingOptions options = {})                    \
        : Pooling(is_max, rank, pool_size, std::move(options), prefix) {}                                     \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      std::vector<int> pool_size;                                                                             \
      PoolingOptions o = options_from_config(config, #Class, rank, pool_size);                               \
      return std::make_shared<Class>(pool_size, o);                                                           \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_POOLING_LAYER(MaxPooling1D, true, 1, "max_pooling1d", 2)
STRATA_POOLING_LAYER(MaxPooling2D, true, 2, "max_pooling2d", 2)
STRATA_POOLING_LAYER(AveragePooling1D, false, 1, "average_pooling1d", 2)
STRATA_POOLING_LAYER(AveragePooling2D, false, 2, "average_pooling2d", 2)
STRATA_POOLING_LAYER(MaxPooling3D, true, 3, "max_pooling3d", 2)
STRATA_POOLING_LAYER(AveragePooling3D, false, 3, "average_pooling3d", 2)
#undef STRATA_POOLING_LAYER

struct GlobalPoolingOptions {
  bool keepdims = false;
  std::string name;
  bool trainable = true;
};

// The mean or maximum over every spatial position: (batch, ..., channels) -> (batch, channels).
class GlobalPooling : public Layer {
 public:
  Json get_config() const override;

 protected:
  GlobalPooling(bool max, int rank, GlobalPoolingOptions options, const char* prefix);
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;
  static GlobalPoolingOptions options_from_config(const Json& config, const std::string& class_name);

 private:
  bool max_;
  int rank_;
  bool keepdims_;
};

#define STRATA_GLOBAL_POOLING_LAYER(Class, is_max, rank, prefix)                                             \
  class Class : public GlobalPooling {                                                                        \
   public:                                                                                                    \
    explicit Class(GlobalPoolingOptions options = {}) : GlobalPooling(is_max, rank, std::move(options), prefix) {} \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      return std::make_shared<Class>(options_from_config(config, #Class));                                   \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_GLOBAL_POOLING_LAYER(GlobalAveragePooling1D, false, 1, "global_average_pooling1d")
STRATA_GLOBAL_POOLING_LAYER(GlobalAveragePooling2D, false, 2, "global_average_pooling2d")
STRATA_GLOBAL_POOLING_LAYER(GlobalMaxPooling1D, true, 1, "global_max_pooling1d")
STRATA_GLOBAL_POOLING_LAYER(GlobalMaxPooling2D, true, 2, "global_max_pooling2d")
STRATA_GLOBAL_POOLING_LAYER(GlobalAveragePooling3D, false, 3, "global_average_pooling3d")
STRATA_GLOBAL_POOLING_LAYER(GlobalMaxPooling3D, true, 3, "global_max_pooling3d")
#undef STRATA_GLOBAL_POOLING_LAYER

}  // namespace strata
