// Keras's merge layers, called on a list of tensors: Add, Subtract (two inputs), Multiply, Average,
// Maximum, Minimum (element-wise, with broadcasting), Concatenate (along `axis`) and Dot (the dot product
// along `axes`, optionally of L2-normalised inputs). With masked inputs the output's mask is the OR of
// theirs (Concatenate: along its axis), as Keras's; Maximum and Minimum take only unmasked values.
#pragma once

#include <array>

#include "layers/layer.h"

namespace strata {

enum class MergeKind : std::uint8_t { add, subtract, multiply, average, maximum, minimum };

// The element-wise merges.
class ElementwiseMerge : public Layer {
 protected:
  ElementwiseMerge(MergeKind kind, const LayerOptions& options, const char* prefix);
  void build_multi(const std::vector<Shape>& input_shapes) override;
  Tensor call_multi(const std::vector<Tensor>& inputs) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;
  static LayerOptions options_from_config(const Json& config, const std::string& class_name);

 private:
  MergeKind kind_;
};

#define STRATA_MERGE_LAYER(Class, kind, prefix)                                                               \
  class Class : public ElementwiseMerge {                                                                     \
   public:                                                                                                    \
    explicit Class(LayerOptions options = {}) : ElementwiseMerge(kind, options, prefix) {}                   \
    std::string class_name() const override { return #Class; }                                               \
    static LayerPtr from_config(const Json& config) {                                                        \
      return std::make_shared<Class>(options_from_config(config, #Class));                                   \
    }                                                                                                         \
                                                                                                              \
   protected:                                                                                                 \
    std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<Class>(std::move(*this)); }     \
  };
STRATA_MERGE_LAYER(Add, MergeKind::add, "add")
STRATA_MERGE_LAYER(Subtract, MergeKind::subtract, "subtract")
STRATA_MERGE_LAYER(Multiply, MergeKind::multiply, "multiply")
STRATA_MERGE_LAYER(Average, MergeKind::average, "average")
STRATA_MERGE_LAYER(Maximum, MergeKind::maximum, "maximum")
STRATA_MERGE_LAYER(Minimum, MergeKind::minimum, "minimum")
#undef STRATA_MERGE_LAYER

struct ConcatenateOptions {
  int axis = -1;
  std::string name;
  bool trainable = true;
};

class Concatenate : public LayerBase<Concatenate> {
 public:
  explicit Concatenate(ConcatenateOptions options = {});
  std::string class_name() const override { return "Concatenate"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  Tensor call_multi(const std::vector<Tensor>& inputs) override;
  bool supports_masking() const override { return true; }
  std::vector<Tensor> compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override;

 private:
  int axis_;
};

struct DotOptions {
  bool normalize = false;  // L2-normalise each input along its axis first: the cosine similarity
  std::string name;
  bool trainable = true;
};

class Dot : public LayerBase<Dot> {
 public:
  // The axes (of each input, batch included) to contract; one value stands for both.
  explicit Dot(std::array<int, 2> axes, DotOptions options = {});
  explicit Dot(int axes, DotOptions options = {}) : Dot(std::array<int, 2>{axes, axes}, std::move(options)) {}
  std::string class_name() const override { return "Dot"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build_multi(const std::vector<Shape>& input_shapes) override;
  Tensor call_multi(const std::vector<Tensor>& inputs) override;

 private:
  std::array<int, 2> axes_;
  bool normalize_;
};

}  // namespace strata
