#include "layers/image_augmentation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "graph/image_ops.h"
#include "graph/ops.h"

namespace strata {

namespace {

AugmentationOptions options_from_config(const Json& c) {
  return AugmentationOptions{.seed = config::seed(c), .name = config::name(c), .trainable = config::trainable(c)};
}

// Keras's _set_factor for a layer whose factors lie within `bounds`: a number f gives (max(-|f|, lower bound),
// |f|); a pair is sorted after checking that it overlaps the bounds.
std::array<float, 2> factor_pair(float f, std::array<float, 2> bounds, const std::string& where) {
  if (!(f >= bounds[0] && f <= bounds[1]))
    throw std::invalid_argument(fmt::format("{}: factor must be a number in [{}, {}] or a pair, got {}", where, bounds[0], bounds[1], f));
  f = std::abs(f);
  return {std::max(-f, bounds[0]), f};
}

std::array<float, 2> factor_pair(std::array<float, 2> f, std::array<float, 2> bounds, const std::string& where) {
  if (!(std::isfinite(f[0]) && std::isfinite(f[1])) || f[0] > bounds[1] || f[1] < bounds[0])
    throw std::invalid_argument(fmt::format("{}: factor ({}, {}) must overlap [{}, {}]", where, f[0], f[1], bounds[0], bounds[1]));
  if (f[0] > f[1]) std::swap(f[0], f[1]);
  return f;
}

std::array<float, 2> factor_from_config(const Json& c, std::array<float, 2> bounds, const std::string& class_name) {
  if (!c.contains("factor")) throw std::invalid_argument(fmt::format("{}: 'factor' is required", class_name));
  const Json& f = c.at("factor");
  if (f.is_number()) return factor_pair(f.get<float>(), bounds, class_name);
  if (f.is_array() && f.size() == 2 && f[0].is_number() && f[1].is_number())
    return factor_pair({f[0].get<float>(), f[1].get<float>()}, bounds, class_name);
  throw std::invalid_argument(fmt::format("{}: factor must be a number or a list of two numbers, got {}", class_name, f.dump()));
}

std::array<float, 2> value_range_from_config(const Json& c, const std::string& class_name) {
  if (!c.contains("value_range") || c.at("value_range").is_null()) return {0.f, 255.f};
  const Json& v = c.at("value_range");
  if (!(v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number()))
    throw std::invalid_argument(fmt::format("{}: value_range must be a list of two numbers, got {}", class_name, v.dump()));
  return {v[0].get<float>(), v[1].get<float>()};
}

void check_images(const Tensor& x, const std::string& class_name, const std::string& name) {
  if (x.rank() != 4)
    throw std::invalid_argument(fmt::format("{} '{}' expects images (batch, height, width, channels), got {}", class_name, name,
                                            x.shape().to_string()));
}

// One value per image, shaped (batch, 1, 1, 1) to broadcast over it.
Tensor per_image(const Tensor& x) { return ops::slice(x, {0, 0, 0, 0}, {-1, 1, 1, 1}); }


// Keras's factor rule for translations (each bound in [-1, 1]) and zooms (in (-1, 1]): a number f is
// [-|f|, |f|], a pair is sorted.
std::array<float, 2> signed_factor_range(const AugmentationFactor& f, bool zoom, const std::string& where, const char* key) {
  for (float v : f.values)
    if (!(v <= 1.f && (zoom ? v > -1.f : v >= -1.f)))
      throw std::invalid_argument(fmt::format("{}: {} must be a number or a pair of numbers in {}, got {}", where, key,
                                              zoom ? "(-1, 1]" : "[-1, 1]", v));
  if (!f.is_pair) return {-std::abs(f.values[0]), std::abs(f.values[0])};
  return {std::min(f.values[0], f.values[1]), std::max(f.values[0], f.values[1])};
}

Json factor_json(const AugmentationFactor& f) { return f.is_pair ? Json(f.values) : Json(f.values[0]); }

AugmentationFactor factor_key(const Json& c, const char* key, const std::string& class_name) {
  if (!c.contains(key) || c.at(key).is_null()) throw std::invalid_argument(fmt::format("{}: '{}' is required", class_name, key));
  const Json& f = c.at(key);
  if (f.is_number()) return AugmentationFactor(f.get<double>());
  if (f.is_array() && f.size() == 2 && f[0].is_number() && f[1].is_number()) return AugmentationFactor(f[0].get<double>(), f[1].get<double>());
  throw std::invalid_argument(fmt::format("{}: {} must be a number or a list of two numbers, got {}", class_name, key, f.dump()));
}

GeometricAugmentationOptions geometric_options_from_config(const Json& c, const std::string& class_name) {
  return GeometricAugmentationOptions{.fill_mode = config::string_key(c, "fill_mode", class_name, "reflect"),
                                      .interpolation = config::string_key(c, "interpolation", class_name, "bilinear"),
                                      .fill_value = config::number(c, "fill_value", class_name, 0.f),
                                      .seed = config::seed(c),
                                      .name = config::name(c),
                                      .trainable = config::trainable(c)};
}

// A column of `value` beside the (batch, 1) draws `like`.
Tensor column_of(const Tensor& like, float value) { return ops::full_like(like, value); }

}  // namespace

RandomFlip::RandomFlip(std::string mode, AugmentationOptions options)
    : LayerBase(options.name, "random_flip", options.trainable), mode_(std::move(mode)), seed_(options.seed) {
  if (mode_ != "horizontal" && mode_ != "vertical" && mode_ != "horizontal_and_vertical")
    throw std::invalid_argument(fmt::format("RandomFlip '{}': mode must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got '{}'",
                                            name(), mode_));
}

void RandomFlip::build(const Shape& input_shape) {
  if (input_shape.rank() != 4)
    throw std::invalid_argument(fmt::format("expects images (batch, height, width, channels), got {}", input_shape.to_string()));
}

Tensor RandomFlip::call(const Tensor& x) {
  check_images(x, class_name(), name());
  // Images of any size: traced again at the data's size.
  if (x.shape()[1] < 0 || x.shape()[2] < 0) return deferred_call({x}, Json::object())[0];
  // Each flipped axis read through its indices n-1 .. 0.
  auto reverse = [&](const Tensor& t, int axis, const char* what) {
    std::vector<float> indices(static_cast<std::size_t>(x.shape()[axis]));
    std::iota(indices.rbegin(), indices.rend(), 0.f);
    auto v = std::make_shared<Variable>(fmt::format("{}/reversed_{}", name(), what), Shape{x.shape()[axis]}, DType::float32, false);
    v->assign(indices);
    return ops::take(t, ops::cast(ops::variable(v, x), DType::int32), axis);
  };
  Tensor flipped = x;
  if (mode_ != "vertical") flipped = reverse(flipped, 2, "width");
  if (mode_ != "horizontal") flipped = reverse(flipped, 1, "height");
  // m * flipped + (1 - m) * x with m in {0, 1} gives exactly one or the other.
  const Tensor m = ops::less_equal(ops::random_uniform_like(per_image(x), 0.f, 1.f, seed_.value()), 0.5f);
  const Tensor chosen = ops::add(ops::multiply(flipped, m), ops::multiply(x, ops::subtract(1.f, m)));
  return ops::in_train_phase(chosen, x);
}

Json RandomFlip::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  c["seed"] = seed_.config();
  c["mode"] = mode_;
  return c;
}

LayerPtr RandomFlip::from_config(const Json& c) {
  config::check_keys(c, "RandomFlip", {"mode", "seed", "data_format"});
  config::require_channels_last(c, "RandomFlip");
  std::string mode = "horizontal_and_vertical";
  if (c.contains("mode") && !c.at("mode").is_null()) {
    if (!c.at("mode").is_string()) throw std::invalid_argument(fmt::format("RandomFlip: mode must be a string, got {}", c.at("mode").dump()));
    mode = c.at("mode").get<std::string>();
  }
  return std::make_shared<RandomFlip>(mode, options_from_config(c));
}

FactorAugmentation::FactorAugmentation(const AugmentationOptions& options, const char* prefix, std::array<float, 2> factor,
                                       std::array<float, 2> value_range)
    : Layer(options.name, prefix, options.trainable), factor_(factor), value_range_(value_range), seed_(options.seed) {}

Tensor FactorAugmentation::draw_per_image(const Tensor& x, float low, float high) const {
  check_images(x, class_name(), name());
  return ops::random_uniform_like(per_image(x), low, high, seed_.value());
}

Json FactorAugmentation::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  c["factor"] = factor_;
  c["value_range"] = value_range_;
  c["seed"] = seed_.config();
  return c;
}

RandomContrast::RandomContrast(std::array<float, 2> factor, std::array<float, 2> value_range, AugmentationOptions options)
    : FactorAugmentation(options, "random_contrast", factor_pair(factor, {0.f, 1.f}, "RandomContrast"), value_range) {
  if (!(value_range_[0] < value_range_[1]))
    throw std::invalid_argument(fmt::format("RandomContrast '{}': value_range must be [low, high] with low < high, got [{}, {}]", name(),
                                            value_range_[0], value_range_[1]));
}

RandomContrast::RandomContrast(float factor, std::array<float, 2> value_range, AugmentationOptions options)
    : RandomContrast(factor_pair(factor, {0.f, 1.f}, "RandomContrast"), value_range, std::move(options)) {}

Tensor RandomContrast::call(const Tensor& x) {
  const Tensor f = draw_per_image(x, 1.f - factor_[0], 1.f + factor_[1]);
  const Tensor mean = ops::mean(x, {1, 2}, true);
  const Tensor adjusted = ops::add(ops::multiply(ops::subtract(x, mean), f), mean);
  return ops::in_train_phase(ops::clip(adjusted, value_range_[0], value_range_[1]), x);
}

LayerPtr RandomContrast::from_config(const Json& c) {
  config::check_keys(c, "RandomContrast", {"factor", "value_range", "seed", "data_format"});
  config::require_channels_last(c, "RandomContrast");
  return std::make_shared<RandomContrast>(factor_from_config(c, {0.f, 1.f}, "RandomContrast"), value_range_from_config(c, "RandomContrast"),
                                          options_from_config(c));
}

RandomBrightness::RandomBrightness(std::array<float, 2> factor, std::array<float, 2> value_range, AugmentationOptions options)
    : FactorAugmentation(options, "random_brightness", factor_pair(factor, {-1.f, 1.f}, "RandomBrightness"), value_range) {
  if (!(std::isfinite(value_range_[0]) && std::isfinite(value_range_[1])))
    throw std::invalid_argument(fmt::format("RandomBrightness '{}': value_range must be two finite numbers", name()));
  if (value_range_[0] > value_range_[1]) std::swap(value_range_[0], value_range_[1]);  // Keras sorts it
}

RandomBrightness::RandomBrightness(float factor, std::array<float, 2> value_range, AugmentationOptions options)
    : RandomBrightness(factor_pair(factor, {-1.f, 1.f}, "RandomBrightness"), value_range, std::move(options)) {}

Tensor RandomBrightness::call(const Tensor& x) {
  const float width = value_range_[1] - value_range_[0];
  const Tensor delta = draw_per_image(x, factor_[0] * width, factor_[1] * width);
  return ops::in_train_phase(ops::clip(ops::add(x, delta), value_range_[0], value_range_[1]), x);
}

LayerPtr RandomBrightness::from_config(const Json& c) {
  config::check_keys(c, "RandomBrightness", {"factor", "value_range", "seed", "data_format"});
  config::require_channels_last(c, "RandomBrightness");
  return std::make_shared<RandomBrightness>(factor_from_config(c, {-1.f, 1.f}, "RandomBrightness"),
                                            value_range_from_config(c, "RandomBrightness"), options_from_config(c));
}

GeometricAugmentation::GeometricAugmentation(GeometricAugmentationOptions options, const char* class_name, const char* prefix)
    : Layer(options.name, prefix, options.trainable), options_(std::move(options)),
      seed_(options_.seed) {
  const auto& fill_mode = options_.fill_mode;
  if (fill_mode != "reflect" && fill_mode != "wrap" && fill_mode != "constant" && fill_mode != "nearest")
    throw std::invalid_argument(fmt::format("{} '{}': fill_mode must be 'reflect', 'wrap', 'constant' or 'nearest', got '{}'", class_name,
                                            name(), fill_mode));
  if (options_.interpolation != "bilinear" && options_.interpolation != "nearest")
    throw std::invalid_argument(fmt::format("{} '{}': interpolation must be 'bilinear' or 'nearest', got '{}'", class_name, name(),
                                            options_.interpolation));
}

Tensor GeometricAugmentation::draw(const Tensor& images, float low, float high, std::uint64_t stream) const {
  const Tensor like = ops::reshape(per_image(images), {-1, 1});
  return ops::random_uniform_like(like, low, high, seed_.value() ^ (stream * 0x9E3779B97F4A7C15ull));
}

Tensor GeometricAugmentation::call(const Tensor& x) {
  check_images(x, class_name(), name());
  // Images of any size: traced again at the data's size.
  if (x.shape()[1] < 0 || x.shape()[2] < 0) return deferred_call({x}, Json::object())[0];
  const Tensor moved = ops::image::affine_transform(x, transforms(x), options_.interpolation, options_.fill_mode, options_.fill_value);
  return ops::in_train_phase(moved, x);
}

Json GeometricAugmentation::get_config() const {
  Json c = Layer::get_config();
  c["data_format"] = "channels_last";
  c["fill_mode"] = options_.fill_mode;
  c["interpolation"] = options_.interpolation;
  c["fill_value"] = options_.fill_value;
  c["seed"] = seed_.config();
  return c;
}

RandomTranslation::RandomTranslation(AugmentationFactor height_factor, AugmentationFactor width_factor, GeometricAugmentationOptions options)
    : GeometricAugmentation(std::move(options), "RandomTranslation", "random_translation"), height_factor_(height_factor), width_factor_(width_factor),
      height_range_(signed_factor_range(height_factor, false, "RandomTranslation", "height_factor")),
      width_range_(signed_factor_range(width_factor, false, "RandomTranslation", "width_factor")) {}

Tensor RandomTranslation::transforms(const Tensor& x) const {
  const auto height = float(x.shape()[1]), width = float(x.shape()[2]);
  const Tensor dy = ops::multiply(draw(x, height_range_[0], height_range_[1], 0), height);
  const Tensor dx = ops::multiply(draw(x, width_range_[0], width_range_[1], 1), width);
  const Tensor one = column_of(dx, 1.f), zero = column_of(dx, 0.f);
  return ops::concatenate({one, zero, ops::negative(dx), zero, one, ops::negative(dy), zero, zero}, 1);
}

Json RandomTranslation::get_config() const {
  Json c = GeometricAugmentation::get_config();
  c["height_factor"] = factor_json(height_factor_);
  c["width_factor"] = factor_json(width_factor_);
  return c;
}

LayerPtr RandomTranslation::from_config(const Json& c) {
  config::check_keys(c, "RandomTranslation", {"height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format"});
  config::require_channels_last(c, "RandomTranslation");
  return std::make_shared<RandomTranslation>(factor_key(c, "height_factor", "RandomTranslation"), factor_key(c, "width_factor", "RandomTranslation"),
                                             geometric_options_from_config(c, "RandomTranslation"));
}

RandomRotation::RandomRotation(AugmentationFactor factor, GeometricAugmentationOptions options)
    : GeometricAugmentation(std::move(options), "RandomRotation", "random_rotation"),
      factor_(factor.is_pair ? factor_pair(factor.values, {-1.f, 1.f}, "RandomRotation") : factor_pair(factor.values[0], {-1.f, 1.f}, "RandomRotation")) {}

Tensor RandomRotation::transforms(const Tensor& x) const {
  // Keras's affine matrix with scale 1 and no shear, about the centre ((width - 1) / 2, (height - 1) / 2).
  const float cx = 0.5f * float(x.shape()[2] - 1), cy = 0.5f * float(x.shape()[1] - 1);
  const Tensor degrees = draw(x, factor_[0] * 360.f, factor_[1] * 360.f, 0);
  const Tensor radians = ops::multiply(degrees, float(M_PI / 180.0));
  const Tensor cos = ops::cos(radians), sin = ops::sin(radians), minus_sin = ops::negative(sin);
  auto offset = [&](float centre, const Tensor& along_x, const Tensor& along_y) {
    return ops::subtract(ops::subtract(ops::constant(centre, cos), ops::multiply(along_x, cx)), ops::multiply(along_y, cy));
  };
  const Tensor zero = column_of(cos, 0.f);
  return ops::concatenate({cos, minus_sin, offset(cx, cos, minus_sin), sin, cos, offset(cy, sin, cos), zero, zero}, 1);
}

Json RandomRotation::get_config() const {
  Json c = GeometricAugmentation::get_config();
  c["factor"] = factor_;
  return c;
}

LayerPtr RandomRotation::from_config(const Json& c) {
  config::check_keys(c, "RandomRotation", {"factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format"});
  config::require_channels_last(c, "RandomRotation");
  return std::make_shared<RandomRotation>(factor_key(c, "factor", "RandomRotation"), geometric_options_from_config(c, "RandomRotation"));
}

RandomZoom::RandomZoom(AugmentationFactor height_factor, std::optional<AugmentationFactor> width_factor, GeometricAugmentationOptions options)
    : GeometricAugmentation(std::move(options), "RandomZoom", "random_zoom"), height_factor_(height_factor), width_factor_(width_factor),
      height_range_(signed_factor_range(height_factor, true, "RandomZoom", "height_factor")),
      width_range_(width_factor ? signed_factor_range(*width_factor, true, "RandomZoom", "width_factor") : height_range_) {}

Tensor RandomZoom::transforms(const Tensor& x) const {
  const float cx = 0.5f * float(x.shape()[2] - 1), cy = 0.5f * float(x.shape()[1] - 1);
  const Tensor zoom_y = draw(x, 1.f + height_range_[0], 1.f + height_range_[1], 0);
  const Tensor zoom_x = width_factor_ ? draw(x, 1.f + width_range_[0], 1.f + width_range_[1], 1) : zoom_y;
  // Fixes the centre: x' = zoom * x + centre * (1 - zoom).
  auto offset = [](float centre, const Tensor& zoom) { return ops::multiply(ops::subtract(1.f, zoom), centre); };
  const Tensor zero = column_of(zoom_y, 0.f);
  return ops::concatenate({zoom_x, zero, offset(cx, zoom_x), zero, zoom_y, offset(cy, zoom_y), zero, zero}, 1);
}

Json RandomZoom::get_config() const {
  Json c = GeometricAugmentation::get_config();
  c["height_factor"] = factor_json(height_factor_);
  c["width_factor"] = width_factor_ ? factor_json(*width_factor_) : Json(nullptr);
  return c;
}

LayerPtr RandomZoom::from_config(const Json& c) {
  config::check_keys(c, "RandomZoom", {"height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format"});
  config::require_channels_last(c, "RandomZoom");
  std::optional<AugmentationFactor> width;
  if (c.contains("width_factor") && !c.at("width_factor").is_null()) width = factor_key(c, "width_factor", "RandomZoom");
  return std::make_shared<RandomZoom>(factor_key(c, "height_factor", "RandomZoom"), width, geometric_options_from_config(c, "RandomZoom"));
}

}  // namespace strata
