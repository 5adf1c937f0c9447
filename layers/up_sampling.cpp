#include "layers/up_sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/image_ops.h"
#include "graph/ops.h"

namespace strata {

UpSampling::UpSampling(int rank, const IntTuple& size, UpSamplingOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), size_(size.expand(rank, "size")), options_(std::move(options)) {
  for (int s : size_)
    if (s <= 0) throw std::invalid_argument(fmt::format("{}: size must be positive, got {}", name(), s));
  const auto& kinds = rank_ == 2 ? std::vector<std::string>{"nearest", "bilinear", "bicubic", "lanczos3", "lanczos5"} : std::vector<std::string>{"nearest"};
  if (std::find(kinds.begin(), kinds.end(), options_.interpolation) == kinds.end())
    throw std::invalid_argument(fmt::format("{}: interpolation must be {}, got '{}'", name(),
                                            rank_ == 2 ? "'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5'" : "'nearest'",
                                            options_.interpolation));
}

void UpSampling::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("expects inputs of rank {}, got {}", rank_ + 2, input_shape.to_string()));
}

Tensor UpSampling::call(const Tensor& x) {
  if (x.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 2, x.shape().to_string()));
  const Shape s = x.shape();
  if (options_.interpolation != "nearest") {
    // Images of any size: traced again at the data's size ("nearest" follows unknown sizes by itself).
    if (s[1] < 0 || s[2] < 0) return deferred_call({x}, Json::object())[0];
    return ops::image::resize(x, s[1] * size_[0], s[2] * size_[1], {.interpolation = options_.interpolation});
  }
  // Nearest: each position gets a new axis of length `size`, filled by broadcasting, then folded back in. An
  // unknown size (an image of any size) folds with its repeat as a scaled unknown dimension.
  std::vector<std::int64_t> spread{s[0] < 0 ? -1 : s[0]}, repeat{1}, folded{spread[0]}, scales;
  if (s[0] < 0) scales.push_back(1);
  bool unknown_size = false;
  for (int axis = 0; axis < rank_; ++axis) {
    const std::int64_t n = s[axis + 1], times = size_[std::size_t(axis)];
    spread.insert(spread.end(), {n < 0 ? -1 : n, 1});
    repeat.insert(repeat.end(), {1, times});
    folded.push_back(n < 0 ? -1 : n * times);
    if (n < 0) scales.push_back(times);
    unknown_size = unknown_size || n < 0;
  }
  spread.push_back(s[rank_ + 1]);
  repeat.push_back(1);
  folded.push_back(s[rank_ + 1]);
  const Tensor zeros = ops::constant(0.f, x, Shape(std::span<const std::int64_t>(repeat)));
  const Tensor repeated = ops::add(ops::reshape(x, spread), zeros);
  return unknown_size ? ops::reshape_scaled(repeated, folded, scales) : ops::reshape(repeated, folded);
}

Json UpSampling::get_config() const {
  Json c = Layer::get_config();
  if (rank_ == 1) {
    c["size"] = size_[0];
  } else {
    c["size"] = size_;
    c["data_format"] = "channels_last";
    if (rank_ == 2) c["interpolation"] = options_.interpolation;  // Keras's UpSampling3D is nearest only
  }
  return c;
}

UpSamplingOptions UpSampling::options_from_config(const Json& c, const std::string& cls, int rank, std::vector<int>& size) {
  config::check_keys(c, cls, {"size", "data_format", "interpolation"});
  config::require_channels_last(c, cls);
  size = config::int_tuple(c, "size", rank, {2});
  UpSamplingOptions o;
  o.interpolation = c.value("interpolation", std::string("nearest"));
  if (rank != 2 && o.interpolation != "nearest")
    throw std::invalid_argument(fmt::format("{}: interpolation \"{}\": only UpSampling2D interpolates; this layer repeats", cls, o.interpolation));
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

}  // namespace strata
