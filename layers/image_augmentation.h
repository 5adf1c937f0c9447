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

// (x - mean) * f + mean per image and channel (the mean over height and width), f uniform in
// [1 - lower, 1 + upper], clipped to value_range. A single factor f means lower 0 and upper f, as Keras.
class RandomContrast : public LayerBase<RandomContrast> {
 public:
  explicit RandomContrast(std::array<float, 2> factor, std::array<float, 2> value_range = {0.f, 255.f},
                          AugmentationOptions options = {});
  explicit RandomContrast(float factor, std::array<float, 2> value_range = {0.f, 255.f}, AugmentationOptions options = {});
  std::string class_name() const override { return "RandomContrast"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::array<float, 2> factor_, value_range_;
  std::optional<std::uint64_t> user_seed_;
  std::uint64_t seed_;
};

// x + d per image, d uniform in [lower, upper] times the width of value_range, clipped to value_range. A
// single factor f means [-f, f], as Keras.
class RandomBrightness : public LayerBase<RandomBrightness> {
 public:
  explicit RandomBrightness(std::array<float, 2> factor, std::array<float, 2> value_range = {0.f, 255.f},
                            AugmentationOptions options = {});
  explicit RandomBrightness(float factor, std::array<float, 2> value_range = {0.f, 255.f}, AugmentationOptions options = {});
  std::string class_name() const override { return "RandomBrightness"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::array<float, 2> factor_, value_range_;
  std::optional<std::uint64_t> user_seed_;
  std::uint64_t seed_;
};

}  // namespace strata
