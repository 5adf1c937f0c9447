#include "graph/volume_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace strata::ops::volume {

namespace {

std::vector<int> three(std::vector<int> v, const char* op, const char* what) {
  if (v.size() == 1) v.resize(3, v[0]);
  if (v.size() != 3 || std::any_of(v.begin(), v.end(), [](int n) { return n < 1; }))
    throw std::invalid_argument(fmt::format("{}: {} must be one or three positive numbers", op, what));
  return v;
}

// The window along depth: how many outputs, and the zero planes before and after that "same" adds
// (TensorFlow's rule: the odd one after).
struct DepthWindow {
  std::int64_t outputs, before = 0, after = 0;
};

DepthWindow depth_window(const char* op, const Shape& x, std::int64_t size, int stride, int dilation, const std::string& padding) {
  for (int i = 1; i <= 3; ++i)
    if (x[i] < 0) throw std::invalid_argument(fmt::format("{}: depth, height and width of {} must be known", op, x.to_string()));
  const std::int64_t depth = x[1], span = (size - 1) * dilation + 1;
  if (padding == "same") {
    const std::int64_t out = (depth + stride - 1) / stride;
    const std::int64_t total = std::max<std::int64_t>((out - 1) * stride + span - depth, 0);
    return {out, total / 2, total - total / 2};
  }
  if (padding != "valid") throw std::invalid_argument(fmt::format("{}: padding must be \"valid\" or \"same\", got \"{}\"", op, padding));
  if (depth < span) throw std::invalid_argument(fmt::format("{}: a depth window of {} does not fit input {}", op, span, x.to_string()));
  return {(depth - span) / stride + 1};
}

// For each tap t of the depth window, the planes it reads for every output, (batch * outputs, h, w, c):
// planes t * dilation + d * stride of `padded`, whose depth allows the last output's stride-long run.
std::vector<Tensor> depth_taps(const Tensor& padded, std::int64_t taps, std::int64_t outputs, int stride, int dilation) {
  const Shape s = padded.shape();
  std::vector<Tensor> planes;
  for (std::int64_t t = 0; t < taps; ++t) {
    Tensor run = slice(padded, {0, t * dilation, 0, 0, 0}, {-1, outputs * stride, -1, -1, -1});
    if (stride > 1) run = slice(reshape(run, {-1, outputs, stride, s[2], s[3], s[4]}), {0, 0, 0, 0, 0, 0}, {-1, -1, 1, -1, -1, -1});
    planes.push_back(reshape(run, {-1, s[2], s[3], s[4]}));
  }
  return planes;
}

// Pads depth with `before` and `after` zero planes, and with more after when the last tap's stride-long
// runs would reach past the end (those planes are never read).
Tensor pad_depth(const Tensor& x, const DepthWindow& w, std::int64_t span, int stride) {
  const std::int64_t depth = x.shape()[1] + w.before + w.after;
  const std::int64_t extra = std::max<std::int64_t>(0, span - 1 + w.outputs * stride - depth);
  if (w.before == 0 && w.after + extra == 0) return x;
  return pad(x, {{0, 0}, {w.before, w.after + extra}, {0, 0}, {0, 0}, {0, 0}});
}

Tensor unfold(const Tensor& y, std::int64_t outputs) {
  const Shape s = y.shape();
  return reshape(y, {-1, outputs, s[1], s[2], s[3]});
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& kernel, std::vector<int> strides, const std::string& padding, std::vector<int> dilation_rate) {
  const Shape ks = kernel.shape();
  if (x.rank() != 5 || ks.rank() != 5)
    throw std::invalid_argument(fmt::format("conv: input {} and kernel {} must both be rank 5 for a 3-D convolution", x.shape().to_string(),
                                            ks.to_string()));
  strides = three(std::move(strides), "conv", "strides");
  dilation_rate = three(std::move(dilation_rate), "conv", "dilation_rate");
  const DepthWindow w = depth_window("conv", x.shape(), ks[0], strides[0], dilation_rate[0], padding);
  const Tensor padded = pad_depth(x, w, (ks[0] - 1) * dilation_rate[0] + 1, strides[0]);
  const std::vector<Tensor> planes = depth_taps(padded, ks[0], w.outputs, strides[0], dilation_rate[0]);
  Tensor sum;
  for (std::int64_t t = 0; t < ks[0]; ++t) {
    const Tensor tap = reshape(slice(kernel, {t, 0, 0, 0, 0}, {1, -1, -1, -1, -1}), {ks[1], ks[2], ks[3], ks[4]});
    const Tensor y = ops::conv(planes[std::size_t(t)], tap, {strides[1], strides[2]}, padding, {dilation_rate[1], dilation_rate[2]});
    sum = sum.valid() ? add(sum, y) : y;
  }
  return unfold(sum, w.outputs);
}

Tensor conv_transpose(const Tensor& x, const Tensor& kernel, std::vector<int> strides, const std::string& padding,
                      std::vector<int> output_padding, std::vector<int> dilation_rate) {
  const Shape ks = kernel.shape();
  if (x.rank() != 5 || ks.rank() != 5)
    throw std::invalid_argument(fmt::format("conv_transpose: input {} and kernel {} must both be rank 5 for a 3-D transposed convolution",
                                            x.shape().to_string(), ks.to_string()));
  strides = three(std::move(strides), "conv_transpose", "strides");
  dilation_rate = three(std::move(dilation_rate), "conv_transpose", "dilation_rate");
  if (output_padding.size() == 1) output_padding.resize(3, output_padding[0]);
  if (!output_padding.empty() && output_padding.size() != 3)
    throw std::invalid_argument("conv_transpose: output_padding needs 3 numbers");
  for (const int extra : output_padding)
    if (extra < 0) throw std::invalid_argument(fmt::format("conv_transpose: output_padding must not be negative, got {}", extra));
  const Shape s = x.shape();
  for (int i = 1; i <= 3; ++i)
    if (s[i] < 0) throw std::invalid_argument(fmt::format("conv_transpose: depth, height and width of {} must be known", s.to_string()));
  const std::int64_t depth = s[1], taps = ks[0], stride = strides[0], dilation = dilation_rate[0];
  const TransposeAxis along = transpose_axis(depth, taps, stride, dilation, padding, output_padding.empty() ? -1 : output_padding[0]);
  // Input plane d, through tap t, lands on plane d * stride + t * dilation of the uncropped output, which also
  // keeps the last plane's stride-long run (zeros) and whatever output_padding adds past it.
  const std::int64_t uncropped = (depth - 1) * stride + (taps - 1) * dilation + 1;
  const std::int64_t length = std::max(uncropped + stride - 1, along.pad_before + along.size);
  const std::vector<int> hw_output_padding = output_padding.empty() ? std::vector<int>{} : std::vector<int>{output_padding[1], output_padding[2]};
  const Tensor planes = reshape(x, {-1, s[2], s[3], s[4]});
  Tensor sum;
  for (std::int64_t t = 0; t < taps; ++t) {
    const Tensor tap = reshape(slice(kernel, {t, 0, 0, 0, 0}, {1, -1, -1, -1, -1}), {ks[1], ks[2], ks[3], ks[4]});
    const Tensor y = ops::conv_transpose(planes, tap, {strides[1], strides[2]}, padding, hw_output_padding,
                                         {dilation_rate[1], dilation_rate[2]});
    const Shape ys = y.shape();
    Tensor spread = reshape(y, {-1, depth, 1, ys[1], ys[2], ys[3]});
    if (stride > 1) spread = pad(spread, {{0, 0}, {0, 0}, {0, stride - 1}, {0, 0}, {0, 0}, {0, 0}});
    spread = reshape(spread, {-1, depth * stride, ys[1], ys[2], ys[3]});
    const Tensor placed = pad(spread, {{0, 0}, {t * dilation, length - t * dilation - depth * stride}, {0, 0}, {0, 0}, {0, 0}});
    sum = sum.valid() ? add(sum, placed) : placed;
  }
  return slice(sum, {0, along.pad_before, 0, 0, 0}, {-1, along.size, -1, -1, -1});
}

Tensor pool(bool max, const Tensor& x, std::vector<int> pool_size, std::vector<int> strides, const std::string& padding) {
  const char* op = max ? "max_pool" : "average_pool";
  if (x.rank() != 5) throw std::invalid_argument(fmt::format("{}: input {} must be rank 5 for 3-D pooling", op, x.shape().to_string()));
  pool_size = three(std::move(pool_size), op, "pool_size");
  strides = strides.empty() ? pool_size : three(std::move(strides), op, "strides");
  const DepthWindow w = depth_window(op, x.shape(), pool_size[0], strides[0], 1, padding);
  // Height and width first, all depth planes at once; then the depth window over the pooled planes.
  const Shape s = x.shape();
  const Tensor flat = reshape(x, {-1, s[2], s[3], s[4]});
  const std::vector<int> size_hw{pool_size[1], pool_size[2]}, strides_hw{strides[1], strides[2]};
  Tensor planes = unfold(max ? max_pool(flat, size_hw, strides_hw, padding) : average_pool(flat, size_hw, strides_hw, padding), s[1]);
  if (max && w.before + w.after > 0) {
    // Padded planes must never win the maximum: they hold the lowest float instead of zero.
    const float lowest = std::numeric_limits<float>::lowest();
    std::vector<Tensor> fill;
    if (w.before > 0) fill.push_back(constant(lowest, planes, {1, w.before, 1, 1, 1}));
    fill.push_back(constant(0.f, planes, {1, s[1], 1, 1, 1}));
    if (w.after > 0) fill.push_back(constant(lowest, planes, {1, w.after, 1, 1, 1}));
    planes = add(pad(planes, {{0, 0}, {w.before, w.after}, {0, 0}, {0, 0}, {0, 0}}), concatenate(fill, 1));
    planes = pad_depth(planes, {w.outputs}, pool_size[0], strides[0]);
  } else {
    planes = pad_depth(planes, w, pool_size[0], strides[0]);
  }
  const std::vector<Tensor> taps = depth_taps(planes, pool_size[0], w.outputs, strides[0], 1);
  Tensor result;
  for (const Tensor& t : taps) result = !result.valid() ? t : max ? maximum(result, t) : add(result, t);
  result = unfold(result, w.outputs);
  if (max) return result;
  // The average over the window's planes inside the input (padding is not counted, as in TensorFlow).
  std::vector<Tensor> inverse_counts;
  for (std::int64_t d = 0; d < w.outputs; ++d) {
    const std::int64_t first = d * strides[0] - w.before, last = first + pool_size[0];
    const std::int64_t inside = std::min<std::int64_t>(last, s[1]) - std::max<std::int64_t>(first, 0);
    inverse_counts.push_back(constant(1.f / float(inside), result, {1, 1, 1, 1, 1}));
  }
  return multiply(result, inverse_counts.size() == 1 ? inverse_counts[0] : concatenate(inverse_counts, 1));
}

}  // namespace strata::ops::volume
