#include "graph/image_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "graph/variable.h"

namespace strata::ops::image {

namespace {

// Sample coordinates are clamped to this before the integer casts (which are undefined beyond int32); it
// lies far outside any image, so only where a "wrap" or "mirror" pattern repeats that far away could differ.
constexpr float kCoordinateLimit = float(1 << 22);

Tensor truncated(const Tensor& t) { return cast(cast(t, DType::int32), DType::float32); }

Tensor floor_of(const Tensor& t) {
  const Tensor whole = truncated(t);
  return subtract(whole, less(t, whole));
}

Tensor round_half_away_from_zero(const Tensor& t) {
  const Tensor whole = truncated(t);
  return add(whole, multiply(sign(t), greater_equal(abs(subtract(t, whole)), 0.5f)));
}

// i mod n with the divisor's sign, as Python's %, for integer-valued i: i / n is exact when it is whole, so
// the floor never rounds up past it.
Tensor floor_mod(const Tensor& i, float n) { return subtract(i, multiply(floor_of(divide(i, n)), n)); }

// The pixel that a sample index (integer-valued, possibly outside [0, size)) reads under fill_mode.
Tensor fixed_index(const Tensor& index, std::int64_t size, const std::string& fill_mode) {
  const float n = float(size);
  if (fill_mode == "wrap") return floor_mod(index, n);
  if (fill_mode == "mirror") {
    if (size == 1) return multiply(index, 0.f);
    return abs(subtract(floor_mod(add(index, n - 1), 2 * (n - 1)), n - 1));
  }
  if (fill_mode == "reflect") {
    // Mirroring the half-pixel grid 2i + 1 over 2n + 1 points: always odd, so the halving is exact.
    const Tensor mirrored = abs(subtract(floor_mod(add(multiply(index, 2.f), 2 * n + 1), 4 * n), 2 * n));
    return multiply(subtract(mirrored, 1.f), 0.5f);
  }
  return clip(index, 0.f, n - 1);  // "nearest"; "constant" masks the outside samples by their weight
}

// The neighbours of one coordinate along one axis and their weights (none for nearest).
struct Neighbour {
  Tensor index, weight;
};

std::vector<Neighbour> neighbours(const Tensor& coordinate, bool bilinear) {
  if (!bilinear) return {{round_half_away_from_zero(coordinate), Tensor()}};
  const Tensor lower = floor_of(coordinate);
  const Tensor upper_weight = subtract(coordinate, lower);
  return {{lower, subtract(1.f, upper_weight)}, {add(lower, 1.f), upper_weight}};
}

Tensor inside(const Tensor& index, std::int64_t size) {
  return multiply(greater_equal(index, 0.f), less(index, float(size)));
}

// 0, 1, ..., size - 1 along `axis` of a rank-4 tensor of ones elsewhere, in the graph of `like`.
Tensor positions(std::int64_t size, int axis, const Tensor& like) {
  Shape shape{1, 1, 1, 1};
  shape[axis] = size;
  std::vector<float> values(static_cast<std::size_t>(size));
  std::iota(values.begin(), values.end(), 0.f);
  auto v = std::make_shared<Variable>(axis == 1 ? "affine_transform/rows" : "affine_transform/columns", shape, DType::float32, false);
  v->assign(values);
  return variable(v, like);
}

// A constant float tensor in the graph of `like` (a non-trainable variable, so it is no layer weight).
Tensor constant_values(const std::string& name, const Shape& shape, const std::vector<float>& values, const Tensor& like) {
  auto v = std::make_shared<Variable>(name, shape, DType::float32, false);
  v->assign(values);
  return variable(v, like);
}

// JAX's resampling kernels, as functions of the distance |x| from the sample.
std::function<double(double)> resize_kernel(const std::string& interpolation) {
  if (interpolation == "bilinear") return [](double x) { return std::max(0.0, 1 - x); };
  if (interpolation == "bicubic") {  // Keys' cubic, a = -0.5
    return [](double x) {
      if (x >= 2) return 0.0;
      if (x >= 1) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
      return ((1.5 * x - 2.5) * x) * x + 1;
    };
  }
  if (interpolation == "lanczos3" || interpolation == "lanczos5") {
    return [r = interpolation == "lanczos3" ? 3.0 : 5.0](double x) {
      if (x > r) return 0.0;
      if (x <= 1e-3) return 1.0;
      return r * std::sin(M_PI * x) * std::sin(M_PI * x / r) / (M_PI * M_PI * x * x);
    };
  }
  throw std::invalid_argument(
      fmt::format("resize: interpolation must be 'nearest', 'bilinear', 'bicubic', 'lanczos3' or 'lanczos5', got '{}'", interpolation));
}

// The (in, out) matrix whose column o holds the weights output o gives each input, for one axis resized
// from `in` to `out` pixels by a kernel interpolation.
std::vector<double> resize_weights(std::int64_t in, std::int64_t out, const std::string& interpolation, bool antialias) {
  const auto kernel = resize_kernel(interpolation);
  const double inverse_scale = double(in) / double(out), kernel_scale = antialias ? std::max(inverse_scale, 1.0) : 1.0;
  std::vector<double> w(std::size_t(in * out), 0.0);
  for (std::int64_t o = 0; o < out; ++o) {
    const double sample = (double(o) + 0.5) * inverse_scale - 0.5;
    double total = 0;
    for (std::int64_t i = 0; i < in; ++i) total += w[std::size_t(i * out + o)] = kernel(std::abs(sample - double(i)) / kernel_scale);
    // Renormalised where the kernel reaches past the edge (JAX leaves an output of no weight at zero).
    for (std::int64_t i = 0; i < in; ++i) {
      double& v = w[std::size_t(i * out + o)];
      v = std::abs(total) > 1000 * double(std::numeric_limits<float>::epsilon()) ? v / total : 0.0;
    }
  }
  return w;
}

// Resamples one axis (1 or 2) of (batch, height, width, channels) to `out` pixels.
Tensor resize_axis(const Tensor& x, int axis, std::int64_t out, const ResizeOptions& options) {
  const std::int64_t in = x.shape()[axis];
  if (in == out) return x;
  const std::string name = fmt::format("resize/{}_{}_to_{}", axis == 1 ? "rows" : "columns", in, out);
  if (options.interpolation == "nearest") {
    std::vector<float> source(static_cast<std::size_t>(out));
    for (std::int64_t o = 0; o < out; ++o)  // in float32, as JAX computes it
      source[std::size_t(o)] = std::floor((float(o) + 0.5f) * float(in) / float(out));
    return gather(x, cast(constant_values(name, Shape{out}, source, x), DType::int32), axis, 0);
  }
  const auto weights = resize_weights(in, out, options.interpolation, options.antialias);
  const Tensor matrix = constant_values(name, Shape{in, out}, std::vector<float>(weights.begin(), weights.end()), x);
  // The axis moves last, meets the matrix, and moves back.
  if (axis == 1) return transpose(matmul(transpose(x, {0, 2, 3, 1}), matrix), {0, 3, 1, 2});
  return transpose(matmul(transpose(x, {0, 1, 3, 2}), matrix), {0, 1, 3, 2});
}

}  // namespace

Tensor resize(const Tensor& images, std::int64_t height, std::int64_t width, const ResizeOptions& options) {
  if (options.interpolation != "nearest") (void)resize_kernel(options.interpolation);  // checks the name before anything is built
  if (height <= 0 || width <= 0) throw std::invalid_argument(fmt::format("resize: the size must be positive, got ({}, {})", height, width));
  if (options.crop_to_aspect_ratio && options.pad_to_aspect_ratio)
    throw std::invalid_argument("resize: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be true");
  if (images.rank() == 3) return squeeze(resize(expand_dims(images, 0), height, width, options), 0);
  const Shape shape = images.shape();  // a copy: new nodes may move the graph's storage
  if (images.rank() != 4)
    throw std::invalid_argument(fmt::format("resize: images must be (batch, height, width, channels) or (height, width, channels), got {}",
                                            shape.to_string()));
  if (images.dtype() != DType::float32) throw std::invalid_argument(fmt::format("resize: images must be float32, got {}", dtype_name(images.dtype())));
  const std::int64_t in_height = shape[1], in_width = shape[2], channels = shape[3];
  if (in_height <= 0 || in_width <= 0 || channels <= 0)
    throw std::invalid_argument(fmt::format("resize: needs a known height, width and channels, got {}", shape.to_string()));
  Tensor x = images;
  if (options.crop_to_aspect_ratio) {  // Keras's integer arithmetic for the window
    const std::int64_t crop_height = std::max<std::int64_t>(std::min(in_height, std::int64_t(double(in_width * height) / double(width))), 1);
    const std::int64_t crop_width = std::max<std::int64_t>(std::min(in_width, std::int64_t(double(in_height * width) / double(height))), 1);
    x = slice(x, {0, (in_height - crop_height) / 2, (in_width - crop_width) / 2, 0}, {-1, crop_height, crop_width, -1});
  } else if (options.pad_to_aspect_ratio) {
    const std::int64_t pad_height = std::max(in_height, std::int64_t(double(in_width * height) / double(width)));
    const std::int64_t pad_width = std::max(in_width, std::int64_t(double(in_height * width) / double(height)));
    // The same margin on both sides (so an odd difference loses a pixel), rows first, as Keras pads.
    const std::int64_t top = (pad_height - in_height) / 2, left = top > 0 ? 0 : (pad_width - in_width) / 2;
    if (top > 0 || left > 0) {
      x = pad(x, {{0, 0}, {top, top}, {left, left}, {0, 0}});
      if (options.fill_value != 0.f) {
        const std::int64_t h = in_height + 2 * top, w = in_width + 2 * left;
        std::vector<float> margin(std::size_t(h * w), 0.f);
        for (std::int64_t i = 0; i < h; ++i)
          for (std::int64_t j = 0; j < w; ++j)
            if (i < top || i >= top + in_height || j < left || j >= left + in_width) margin[std::size_t(i * w + j)] = options.fill_value;
        x = add(x, constant_values("resize/fill", Shape{1, h, w, 1}, margin, x));
      }
    }
  }
  return resize_axis(resize_axis(x, 1, height, options), 2, width, options);
}

Tensor affine_transform(const Tensor& images, const Tensor& transform, const std::string& interpolation,
                        const std::string& fill_mode, float fill_value) {
  if (interpolation != "bilinear" && interpolation != "nearest")
    throw std::invalid_argument(fmt::format("affine_transform: interpolation must be 'bilinear' or 'nearest', got '{}'", interpolation));
  constexpr std::array<const char*, 5> kFillModes{"constant", "nearest", "wrap", "mirror", "reflect"};
  if (std::find(kFillModes.begin(), kFillModes.end(), fill_mode) == kFillModes.end())
    throw std::invalid_argument(fmt::format("affine_transform: fill_mode must be one of {}, got '{}'", fmt::join(kFillModes, ", "), fill_mode));
  if (images.rank() == 3) return squeeze(affine_transform(expand_dims(images, 0), transform, interpolation, fill_mode, fill_value), 0);
  const Shape shape = images.shape();  // a copy: new nodes may move the graph's storage
  if (images.rank() != 4)
    throw std::invalid_argument(fmt::format(
        "affine_transform: images must be (batch, height, width, channels) or (height, width, channels), got {}", shape.to_string()));
  if (images.dtype() != DType::float32)
    throw std::invalid_argument(fmt::format("affine_transform: images must be float32, got {}", dtype_name(images.dtype())));
  const std::int64_t height = shape[1], width = shape[2], channels = shape[3];
  if (height <= 0 || width <= 0 || channels <= 0)
    throw std::invalid_argument(fmt::format("affine_transform: needs a known height, width and channels, got {}", shape.to_string()));
  if (height * width >= (std::int64_t(1) << 24))
    throw std::invalid_argument(fmt::format("affine_transform: images {} have more than 2^24 pixels", shape.to_string()));

  Tensor t = transform;
  if (t.rank() == 1) t = reshape(t, {1, t.shape()[0]});
  if (t.rank() != 2 || t.shape()[1] != 8 || t.dtype() != DType::float32)
    throw std::invalid_argument(fmt::format("affine_transform: transform must be float32 (8) or (batch, 8), got {}", transform.shape().to_string()));
  const std::int64_t transforms = t.shape()[0], batch = shape[0];
  if (transforms > 1 && batch > 0 && transforms != batch)
    throw std::invalid_argument(fmt::format("affine_transform: {} transforms for {} images", transforms, batch));
  t = stop_gradient(t);
  auto coefficient = [&](std::int64_t i) { return reshape(slice(t, {0, i}, {-1, 1}), {-1, 1, 1, 1}); };
  const Tensor x = positions(width, 2, images), y = positions(height, 1, images);
  auto affine = [&](std::int64_t first) {
    return add(add(multiply(coefficient(first), x), multiply(coefficient(first + 1), y)), coefficient(first + 2));
  };
  const Tensor k = add(add(multiply(coefficient(6), x), multiply(coefficient(7), y)), 1.f);
  Tensor source_x = divide(affine(0), k), source_y = divide(affine(3), k);
  if (transforms == 1) {  // one transform for every image: give it the images' batch
    const Tensor zero_per_image = full_like(slice(images, {0, 0, 0, 0}, {-1, 1, 1, 1}), 0.f);
    source_x = add(source_x, zero_per_image);
    source_y = add(source_y, zero_per_image);
  }
  source_x = clip(source_x, -kCoordinateLimit, kCoordinateLimit);
  source_y = clip(source_y, -kCoordinateLimit, kCoordinateLimit);

  // Every (row, column) neighbour pair becomes a block of flat pixel indices and weights; one gather reads
  // them all and a sum over the blocks interpolates.
  const bool bilinear = interpolation == "bilinear", constant_fill = fill_mode == "constant";
  const std::int64_t pixels = height * width;
  std::vector<Tensor> indices, weights;
  Tensor outside_weight;  // the weight of the samples outside the image, which read fill_value
  for (const Neighbour& row : neighbours(source_y, bilinear)) {
    for (const Neighbour& column : neighbours(source_x, bilinear)) {
      Tensor weight = bilinear ? multiply(row.weight, column.weight) : Tensor();
      if (constant_fill) {
        const Tensor in = multiply(inside(row.index, height), inside(column.index, width));
        const Tensor out = subtract(1.f, in);
        const Tensor out_weight = weight.valid() ? multiply(weight, out) : out;
        outside_weight = outside_weight.valid() ? add(outside_weight, out_weight) : out_weight;
        weight = weight.valid() ? multiply(weight, in) : in;
      }
      const Tensor flat = add(multiply(fixed_index(row.index, height, fill_mode), float(width)),
                              fixed_index(column.index, width, fill_mode));
      indices.push_back(reshape(flat, {-1, pixels}));
      if (weight.valid()) weights.push_back(reshape(weight, {-1, pixels}));
    }
  }
  const std::int64_t samples = std::int64_t(indices.size());
  const Tensor table = reshape(images, {-1, pixels, channels});
  Tensor out = gather(table, cast(concatenate(indices, 1), DType::int32), 1, 1);  // (batch, samples * pixels, channels)
  if (!weights.empty()) out = multiply(out, reshape(concatenate(weights, 1), {-1, samples * pixels, 1}));
  if (samples > 1) out = sum(reshape(out, {-1, samples, pixels, channels}), {1});
  out = reshape(out, {-1, height, width, channels});
  if (constant_fill && fill_value != 0.f) out = add(out, multiply(outside_weight, fill_value));
  return out;
}

}  // namespace strata::ops::image
