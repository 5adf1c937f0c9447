#include "layers/resizing.h"

#include <fmt/format.h>

#include <stdexcept>
#include <vector>

#include "graph/graph.h"
#include "graph/ops.h"
#include "graph/variable.h"

namespace strata {

namespace {

void check_size(std::int64_t height, std::int64_t width, const std::string& class_name, const std::string& name) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument(fmt::format("{} '{}': height and width must be positive, got ({}, {})", class_name, name, height, width));
}

// (batch, height, width, channels) with the channels known; returns whether the height or width is unknown
// (images of any size: the layer's call then waits for the data's size, see Layer::deferred_call).
bool check_images(const Tensor& x, const std::string& class_name, const std::string& name) {
  if (x.rank() != 4)
    throw std::invalid_argument(fmt::format("{} '{}' expects images (batch, height, width, channels), got {}", class_name, name,
                                            x.shape().to_string()));
  if (x.shape()[3] <= 0)
    throw std::invalid_argument(fmt::format("{} '{}' needs known channels, got {}", class_name, name, x.shape().to_string()));
  return x.shape()[1] < 0 || x.shape()[2] < 0;
}

std::int64_t size_key(const Json& c, const char* key, const std::string& class_name) {
  if (!c.contains(key) || !c.at(key).is_number_integer())
    throw std::invalid_argument(fmt::format("{}: '{}' must be given as an integer, got {}", class_name, key, c.value(key, Json(nullptr)).dump()));
  return c.at(key).get<std::int64_t>();
}

bool flag(const Json& c, const char* key, const std::string& class_name) {
  if (!c.contains(key) || c.at(key).is_null()) return false;
  if (!c.at(key).is_boolean()) throw std::invalid_argument(fmt::format("{}: {} must be true or false, got {}", class_name, key, c.at(key).dump()));
  return c.at(key).get<bool>();
}

Tensor as_float(const Tensor& x) { return x.dtype() == DType::float32 ? x : ops::cast(x, DType::float32); }

}  // namespace

Resizing::Resizing(std::int64_t height, std::int64_t width, ResizingOptions options)
    : LayerBase(options.name, "resizing", options.trainable), height_(height), width_(width), options_(std::move(options)) {
  check_size(height_, width_, "Resizing", name());
  const auto& interpolation = options_.interpolation;
  if (interpolation != "nearest" && interpolation != "bilinear" && interpolation != "bicubic" && interpolation != "lanczos3" &&
      interpolation != "lanczos5")
    throw std::invalid_argument(fmt::format(
        "Resizing '{}': interpolation must be 'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5', got '{}'", name(), interpolation));
  if (options_.crop_to_aspect_ratio && options_.pad_to_aspect_ratio)
    throw std::invalid_argument(fmt::format("Resizing '{}': only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be true", name()));
}

Tensor Resizing::call(const Tensor& inputs) {
  if (check_images(inputs, class_name(), name())) return deferred_call({inputs}, Json::object())[0];
  return ops::image::resize(as_float(inputs), height_, width_,
                            {.interpolation = options_.interpolation,
                             .antialias = options_.antialias,
                             .crop_to_aspect_ratio = options_.crop_to_aspect_ratio,
                             .pad_to_aspect_ratio = options_.pad_to_aspect_ratio,
                             .fill_value = options_.fill_value});
}

Json Resizing::get_config() const {
  Json c = Layer::get_config();
  c["height"] = height_;
  c["width"] = width_;
  c["interpolation"] = options_.interpolation;
  c["crop_to_aspect_ratio"] = options_.crop_to_aspect_ratio;
  c["pad_to_aspect_ratio"] = options_.pad_to_aspect_ratio;
  c["fill_mode"] = "constant";
  c["fill_value"] = options_.fill_value;
  c["antialias"] = options_.antialias;
  c["data_format"] = "channels_last";
  return c;
}

LayerPtr Resizing::from_config(const Json& c) {
  config::check_keys(c, "Resizing", {"height", "width", "interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "fill_mode",
                                     "fill_value", "antialias", "data_format"});
  config::require_channels_last(c, "Resizing");
  const std::string fill_mode = c.contains("fill_mode") && c.at("fill_mode").is_string() ? c.at("fill_mode").get<std::string>() : "constant";
  if (fill_mode != "constant") throw std::invalid_argument(fmt::format("Resizing: fill_mode must be 'constant', got '{}'", fill_mode));
  ResizingOptions o;
  if (c.contains("interpolation") && !c.at("interpolation").is_null()) {
    if (!c.at("interpolation").is_string())
      throw std::invalid_argument(fmt::format("Resizing: interpolation must be a string, got {}", c.at("interpolation").dump()));
    o.interpolation = c.at("interpolation").get<std::string>();
  }
  o.crop_to_aspect_ratio = flag(c, "crop_to_aspect_ratio", "Resizing");
  o.pad_to_aspect_ratio = flag(c, "pad_to_aspect_ratio", "Resizing");
  o.antialias = flag(c, "antialias", "Resizing");
  o.fill_value = config::number(c, "fill_value", "Resizing", 0.f);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Resizing>(size_key(c, "height", "Resizing"), size_key(c, "width", "Resizing"), o);
}

CenterCrop::CenterCrop(std::int64_t height, std::int64_t width, LayerOptions options)
    : LayerBase(options.name, "center_crop", options.trainable), height_(height), width_(width) {
  check_size(height_, width_, "CenterCrop", name());
}

Tensor CenterCrop::call(const Tensor& inputs) {
  if (check_images(inputs, class_name(), name())) return deferred_call({inputs}, Json::object())[0];
  const Tensor x = as_float(inputs);
  const std::int64_t extra_rows = x.shape()[1] - height_, extra_columns = x.shape()[2] - width_;
  if (extra_rows >= 0 && extra_columns >= 0) return ops::slice(x, {0, extra_rows / 2, extra_columns / 2, 0}, {-1, height_, width_, -1});
  return ops::image::resize(x, height_, width_, {.crop_to_aspect_ratio = true});
}

Json CenterCrop::get_config() const {
  Json c = Layer::get_config();
  c["height"] = height_;
  c["width"] = width_;
  c["data_format"] = "channels_last";
  return c;
}

LayerPtr CenterCrop::from_config(const Json& c) {
  config::check_keys(c, "CenterCrop", {"height", "width", "data_format"});
  config::require_channels_last(c, "CenterCrop");
  return std::make_shared<CenterCrop>(size_key(c, "height", "CenterCrop"), size_key(c, "width", "CenterCrop"),
                                      LayerOptions{config::name(c), config::trainable(c)});
}

RandomCrop::RandomCrop(std::int64_t height, std::int64_t width, std::optional<std::uint64_t> seed, LayerOptions options)
    : LayerBase(options.name, "random_crop", options.trainable), height_(height), width_(width), seed_(seed) {
  check_size(height_, width_, "RandomCrop", name());
}

Tensor RandomCrop::call(const Tensor& inputs) {
  if (check_images(inputs, class_name(), name())) return deferred_call({inputs}, Json::object())[0];
  const Tensor x = as_float(inputs);
  const Tensor resized = ops::image::resize(x, height_, width_, {.crop_to_aspect_ratio = true});
  const std::int64_t extra_rows = x.shape()[1] - height_, extra_columns = x.shape()[2] - width_;
  if (extra_rows <= 0 || extra_columns <= 0) return resized;
  // One start per axis, uniform over the extra + 1 places; the window's rows and columns are gathered.
  const Tensor one = ops::constant(0.f, x, Shape{1});
  auto window = [&](std::int64_t extra, std::int64_t size, int axis, std::uint64_t stream) {
    const Tensor start = ops::cast(ops::random_uniform_like(one, 0.f, float(extra + 1), seed_.value() ^ (stream * 0x9E3779B97F4A7C15ull)), DType::int32);
    std::vector<float> offsets(static_cast<std::size_t>(size));
    for (std::size_t i = 0; i < offsets.size(); ++i) offsets[i] = float(i);
    auto v = std::make_shared<Variable>(fmt::format("{}/offsets_{}", name(), axis), Shape{size}, DType::float32, false);
    v->assign(offsets);
    // A start of extra + 1 (the draw's open end met by float rounding) would read past the image.
    const Tensor first = ops::clip(ops::cast(start, DType::float32), 0.f, float(extra));
    return ops::cast(ops::add(ops::variable(v, x), first), DType::int32);
  };
  const Tensor rows = ops::gather(x, window(extra_rows, height_, 1, 0), 1, 0);
  const Tensor cropped = ops::gather(rows, window(extra_columns, width_, 2, 1), 2, 0);
  return ops::in_train_phase(cropped, resized);
}

Json RandomCrop::get_config() const {
  Json c = Layer::get_config();
  c["height"] = height_;
  c["width"] = width_;
  c["seed"] = seed_.config();
  c["data_format"] = "channels_last";
  return c;
}

LayerPtr RandomCrop::from_config(const Json& c) {
  config::check_keys(c, "RandomCrop", {"height", "width", "seed", "data_format"});
  config::require_channels_last(c, "RandomCrop");
  return std::make_shared<RandomCrop>(size_key(c, "height", "RandomCrop"), size_key(c, "width", "RandomCrop"), config::seed(c),
                                      LayerOptions{config::name(c), config::trainable(c)});
}

}  // namespace strata
