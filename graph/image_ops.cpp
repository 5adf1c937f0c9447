#include "graph/image_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
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

}  // namespace

Tensor affine_transform(const Tensor& images, const Tensor& transform, const std::string& interpolation,
                        const std::string& fill_mode, float fill_value) {
  if (interpolation != "bilinear" && interpolation != "nearest")
    throw std::invalid_argument(fmt::format("affine_transform: interpolation must be 'bilinear' or 'nearest', got '{}'", interpolation));
  constexpr std::array<const char*, 5> kFillModes{"constant", "nearest", "wrap", "mirror", "reflect"};
  if (std::find(kFillModes.begin(), kFillModes.end(), fill_mode) == kFillModes.end())
    throw std::invalid_argument(fmt::format("affine_transform: fill_mode must be one of {}, got '{}'", fmt::join(kFillModes, ", "), fill_mode));
  if (images.rank() == 3) return squeeze(affine_transform(expand_dims(images, 0), transform, interpolation, fill_mode, fill_value), 0);
  const Shape& shape = images.shape();
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
