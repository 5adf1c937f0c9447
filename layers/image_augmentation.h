// Keras 3's image augmentation layers: RandomFlip, RandomContrast, RandomBrightness, and the resampling ones,
// RandomTranslation, RandomRotation and RandomZoom. Each draws one random transformation per image while
// training and is the identity otherwise, as Keras's (images are (batch, height, width, channels)).
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
  LayerSeed seed_;
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
  LayerSeed seed_;
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

// A Keras augmentation factor as written: a number f (usually meaning [-|f|, |f|]) or a pair (lower, upper).
struct AugmentationFactor {
  AugmentationFactor(double f) : values{float(f), float(f)}, is_pair(false) {}  // NOLINT: implicit, a number as in Keras
  AugmentationFactor(double lower, double upper) : values{float(lower), float(upper)}, is_pair(true) {}
  std::array<float, 2> values;
  bool is_pair;
};

struct GeometricAugmentationOptions {
  std::string fill_mode = "reflect";       // outside the image: "reflect", "wrap", "constant" or "nearest"
  std::string interpolation = "bilinear";  // or "nearest"
  float fill_value = 0.f;                  // with fill_mode "constant"
  std::optional<std::uint64_t> seed = std::nullopt;
  std::string name;
  bool trainable = true;
};

// What RandomTranslation, RandomRotation and RandomZoom share: while training, every image is resampled
// through its own random affine transform (ops::image::affine_transform, with Keras's fill modes and
// interpolations); the gradient flows back through the resampling to the layers before.
class GeometricAugmentation : public Layer {
 public:
  Json get_config() const override;
  const GeometricAugmentationOptions& options() const { return options_; }

 protected:
  GeometricAugmentation(GeometricAugmentationOptions options, const char* class_name, const char* prefix);
  Tensor call(const Tensor& inputs) override;
  // This step's transforms for `images`: (batch, 8) rows mapping output pixels to input points.
  virtual Tensor transforms(const Tensor& images) const = 0;
  // One uniform draw in [low, high) per image, shaped (batch, 1); `stream` keeps a layer's draws apart.
  Tensor draw(const Tensor& images, float low, float high, std::uint64_t stream) const;

  GeometricAugmentationOptions options_;
  LayerSeed seed_;
};

// Shifts each image by a fraction of its height and width, drawn in [lower, upper] of each factor (a number f
// means [-f, f]; factors lie in [-1, 1]).
class RandomTranslation : public GeometricAugmentation {
 public:
  RandomTranslation(AugmentationFactor height_factor, AugmentationFactor width_factor, GeometricAugmentationOptions options = {});
  std::string class_name() const override { return "RandomTranslation"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor transforms(const Tensor& images) const override;
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RandomTranslation>(std::move(*this)); }

 private:
  AugmentationFactor height_factor_, width_factor_;
  std::array<float, 2> height_range_, width_range_;
};

// Rotates each image about its centre by an angle drawn in [lower, upper] x 360 degrees (a number f means
// [-f, f]), turning the way Keras does for the same angle.
class RandomRotation : public GeometricAugmentation {
 public:
  explicit RandomRotation(AugmentationFactor factor, GeometricAugmentationOptions options = {});
  std::string class_name() const override { return "RandomRotation"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);
  const std::array<float, 2>& factor() const { return factor_; }

 protected:
  Tensor transforms(const Tensor& images) const override;
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RandomRotation>(std::move(*this)); }

 private:
  std::array<float, 2> factor_;
};

// Zooms each image about its centre: output pixels read the input at 1 + z times their distance from the
// centre, z drawn in [lower, upper] of each factor (a number f means [-f, f]; factors lie in (-1, 1]), so a
// positive z zooms out. Without a width factor both axes share the height's draw, keeping the aspect ratio.
class RandomZoom : public GeometricAugmentation {
 public:
  explicit RandomZoom(AugmentationFactor height_factor, std::optional<AugmentationFactor> width_factor = std::nullopt,
                      GeometricAugmentationOptions options = {});
  std::string class_name() const override { return "RandomZoom"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor transforms(const Tensor& images) const override;
  std::shared_ptr<Layer> move_to_heap() override { return std::make_shared<RandomZoom>(std::move(*this)); }

 private:
  AugmentationFactor height_factor_;
  std::optional<AugmentationFactor> width_factor_;
  std::array<float, 2> height_range_, width_range_;
};

}  // namespace strata
