// Image operations of keras.ops.image, composed from the engine's primitives (so their gradients come from
// the primitives' rules and every backend runs them).
#pragma once

#include <cstdint>
#include <string>

#include "graph/ops.h"

namespace strata::ops::image {

// Resamples images (batch, height, width, channels), or one image (height, width, channels), through an
// affine or projective transform, as keras.ops.image.affine_transform. Each row (a0, a1, a2, b0, b1, b2, c0,
// c1) of `transform` ((8), one for every image, or (batch, 8)) maps the output pixel (x, y) to the input
// point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, the output to the input as
// Keras's layers build them (c0 = c1 = 0 there).
// interpolation: "bilinear" or "nearest" (half away from zero). fill_mode, for the points outside the
// image: "constant" (fill_value), "nearest" (the edge pixel), "wrap" (the image repeated), "mirror"
// (reflected about the edge pixels' centres: d c b | a b c d | c b a) or "reflect" (about the edge:
// d c b a | a b c d | d c b a); every neighbour of a bilinear sample is placed by this rule on its own, as
// Keras (with JAX's map_coordinates) does. The gradient reaches the images, not the transform.
Tensor affine_transform(const Tensor& images, const Tensor& transform, const std::string& interpolation = "bilinear",
                        const std::string& fill_mode = "constant", float fill_value = 0.f);

struct ResizeOptions {
  std::string interpolation = "bilinear";  // "nearest", "bilinear", "bicubic", "lanczos3" or "lanczos5"
  bool antialias = false;                  // widen the kernel when shrinking, so every input pixel counts
  bool crop_to_aspect_ratio = false;       // first cut the largest centred window of the target's aspect ratio
  bool pad_to_aspect_ratio = false;        // or first pad to it, evenly on both sides, with fill_value
  float fill_value = 0.f;
};

// Resizes images (batch, height, width, channels), or one image, to (height, width), as
// keras.ops.image.resize (JAX's resampling: half-pixel centres, the kernel's weights renormalised at the
// edges; nearest reads floor((i + 0.5) * in / out)). Each axis is one constant interpolation matrix (a
// gather for nearest), so the gradient reaches the images.
Tensor resize(const Tensor& images, std::int64_t height, std::int64_t width, const ResizeOptions& options = {});

}  // namespace strata::ops::image
