// Keras's Resizing and CenterCrop (channels_last), fixed image resampling built on ops::image::resize,
// and RandomCrop, which crops at a random place while training.
#pragma once

#include <cstdint>
#include <optional>

#include "graph/image_ops.h"
#include "layers/layer.h"

namespace strata {

struct ResizingOptions {
  std::string interpolation = "bilinear";  // "nearest", "bilinear", "bicubic", "lanczos3" or "lanczos5"
  bool crop_to_aspect_ratio = false;
  bool pad_to_aspect_ratio = false;
  float fill_value = 0.f;  // the padding's value with pad_to_aspect_ratio
  bool antialias = false;
  std::string name;
  bool trainable = true;
};

// Resizes each image to (height, width).
class Resizing : public LayerBase<Resizing> {
 public:
  Resizing(std::int64_t height, std::int64_t width, ResizingOptions options = {});
  std::string class_name() const override { return "Resizing"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::int64_t height_, width_;
  ResizingOptions options_;
};

// Cuts the centred (height, width) window of each image; an image smaller than that along either axis is
// instead resized (bilinear) from its largest centred window of the target's aspect ratio, as Keras does.
class CenterCrop : public LayerBase<CenterCrop> {
 public:
  CenterCrop(std::int64_t height, std::int64_t width, LayerOptions options = {});
  std::string class_name() const override { return "CenterCrop"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::int64_t height_, width_;
};

// While training, cuts a (height, width) window at one random place for the whole batch, as Keras 3 does;
// in inference, and while training on images not larger than the window along both axes, resizes
// (bilinear) the image's largest centred window of the target's aspect ratio to (height, width), as
// Keras documents it.
class RandomCrop : public LayerBase<RandomCrop> {
 public:
  RandomCrop(std::int64_t height, std::int64_t width, std::optional<std::uint64_t> seed = std::nullopt, LayerOptions options = {});
  std::string class_name() const override { return "RandomCrop"; }
  Json get_config() const override;
  static LayerPtr from_config(const Json& config);

 protected:
  Tensor call(const Tensor& inputs) override;

 private:
  std::int64_t height_, width_;
  LayerSeed seed_;
};

}  // namespace strata
