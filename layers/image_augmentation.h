// Keras 3's image augmentation layers that move no pixel between positions: RandomFlip, RandomContrast and
// RandomBrightness. Each draws one random transformation per image while training and is the identity
// otherwise, as Keras's (images are (batch, height, width, channels)).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "layers/layer.h"

namespace strata {

struct AugmentationOptions {
  std::optional<std::uint64_t> seed = std::nullopt;  // unset: drawn from the global seed
  std::string name;
  bool trainable = true;
};

// Flips each image left-right ("horizontal"), top-bottom ("vertical"), or, with "horizontal_and_vertical",
// both at once, with probability 1/2 (one draw per image for both axes, as Keras).
class RandomFlip : public LayerBase<RandomFlip> {
 public:
  explicit RandomFlip(std::string mode = "horizontal_and_vertical", AugmentationOptions options = {});
  std::string class_name() const override { return "RandomFlip"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& inputs) override;

 private:
  std::string mode_;
  std::optional<std::uint64_t> user_seed_;
  std::uint64_t seed_;
  VariablePtr reversed_rows_, reversed_columns_;  // the indices n-1 .. 0 of each flipped axis
};

// What RandomContrast and RandomBrightness share: a factor range, a value range and a seed, in Keras's
// config keys.
class FactorAugmentation : public Layer {
 public:
  Json get_config() const override;
  const std::array<float, 2>& factor() const { return factor_; }
  const std::array<float, 2>& value_range() const { return value_range_; }

 protected:
  FactorAugmentation(const AugmentationOptions& options, const char* prefix, std::array<float, 2> factor,
                     std::array<float, 2> value_range);
  // One uniform draw per image in [low, high), shaped (batch, 1, 1, 1); throws unless x holds images.
  Tensor draw_per_image(const Tensor& x, float low, float high) const;

  std::array<float, 2> factor_, value_range_;
  std::optional<std::uint64_t> user_seed_;
  std::uint64_t seed_;
};

// (x - mean) * f + mean per image and channel (the mean over height and width), f uniform in
// [1 - lower, 1 + upper], clipped to value_range. A single factor f means lower 0 and upper f, as Keras.
class RandomContrast : public FactorAugmentation {
 public:
  explicit RandomContrast(std::array<float, 2> factor, std::array<float, 2> value_range = {0.f, 255.f},
                          AugmentationOptions options = {});
  explicit RandomContrast(float factor, std::array<float, 2> value_range = {0.f, 255.f}, AugmentationOptions options = {});
  std::string class_name() const override { return "RandomContrast"; }
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RandomContrast>(std::move(*this)); }
};

// x + d per image, d uniform in [lower, upper] times the width of value_range, clipped to value_range. A
// single factor f means [-f, f], as Keras.
class RandomBrightness : public FactorAugmentation {
 public:
  explicit RandomBrightness(std::array<float, 2> factor, std::array<float, 2> value_range = {0.f, 255.f},
                            AugmentationOptions options = {});
  explicit RandomBrightness(float factor, std::array<float, 2> value_range = {0.f, 255.f}, AugmentationOptions options = {});
  std::string class_name() const override { return "RandomBrightness"; }
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RandomBrightness>(std::move(*this)); }
};

}  // namespace strata
