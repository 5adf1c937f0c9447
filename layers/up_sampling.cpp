#include "layers/up_sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

UpSampling::UpSampling(int rank, const IntTuple& size, UpSamplingOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), size_(size.expand(rank, "size")), options_(std::move(options)) {
  for (int s : size_)
    if (s <= 0) throw std::invalid_argument(fmt::format("{}: size must be positive, got {}", name(), s));
  if (options_.interpolation != "nearest" && !(rank_ == 2 && options_.interpolation == "bilinear"))
    throw std::invalid_argument(fmt::format("{}: interpolation must be {}, got '{}'", name(),
                                            rank_ == 2 ? "'nearest' or 'bilinear'" : "'nearest'", options_.interpolation));
}

void UpSampling::build(const Shape& input_shape) {
  if (input_shape.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("expects inputs of rank {}, got {}", rank_ + 2, input_shape.to_string()));
  if (options_.interpolation != "bilinear") return;
  for (int axis = 0; axis < rank_; ++axis) {
    const std::int64_t in = input_shape[axis + 1], scale = size_[std::size_t(axis)], out = in * scale;
    if (in <= 0) throw std::invalid_argument(fmt::format("bilinear upsampling needs known spatial sizes, got {}", input_shape.to_string()));
    // Output o samples the input at (o + 0.5) / scale - 0.5, between its two neighbours, clamped at the edges.
    std::vector<float> matrix(std::size_t(in * out), 0.f);
    for (std::int64_t o = 0; o < out; ++o) {
      const double source = (double(o) + 0.5) / double(scale) - 0.5;
      const double lower = std::floor(source), frac = source - lower;
      const std::int64_t i0 = std::clamp<std::int64_t>(std::int64_t(lower), 0, in - 1);
      const std::int64_t i1 = std::clamp<std::int64_t>(std::int64_t(lower) + 1, 0, in - 1);
      matrix[std::size_t(i0 * out + o)] += float(1.0 - frac);
      matrix[std::size_t(i1 * out + o)] += float(frac);
    }
    auto v = std::make_shared<Variable>(fmt::format("{}/interpolation_{}", name(), axis), Shape{in, out}, DType::float32, false);
    v->assign(matrix);
    interpolation_.push_back(v);
  }
}

Tensor UpSampling::call(const Tensor& x) {
  if (x.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 2, x.shape().to_string()));
  const Shape& s = x.shape();
  if (options_.interpolation == "bilinear") {
    // (N, H, W, C) -> (N, W, C, H) x Ah -> (N, sH, C, W) x Aw -> (N, sH, sW, C).
    Tensor t = ops::matmul(ops::transpose(x, {0, 2, 3, 1}), interpolation_[0]);
    t = ops::matmul(ops::transpose(t, {0, 3, 2, 1}), interpolation_[1]);
    return ops::transpose(t, {0, 1, 3, 2});
  }
  // Nearest: each position gets a new axis of length `size`, filled by broadcasting, then folded back in.
  std::vector<std::int64_t> spread{-1}, repeat{1}, folded{-1};
  for (int axis = 0; axis < rank_; ++axis) {
    const std::int64_t n = s[axis + 1];
    if (n < 0) throw std::invalid_argument(fmt::format("{} needs known spatial sizes, got {}", class_name(), s.to_string()));
    spread.insert(spread.end(), {n, 1});
    repeat.insert(repeat.end(), {1, size_[std::size_t(axis)]});
    folded.push_back(n * size_[std::size_t(axis)]);
  }
  spread.push_back(s[rank_ + 1]);
  repeat.push_back(1);
  folded.push_back(s[rank_ + 1]);
  const Tensor zeros = ops::constant(0.f, x, Shape(std::span<const std::int64_t>(repeat)));
  return ops::reshape(ops::add(ops::reshape(x, spread), zeros), folded);
}

Json UpSampling::get_config() const {
  Json c = Layer::get_config();
  if (rank_ == 1) {
    c["size"] = size_[0];
  } else {
    c["size"] = size_;
    c["data_format"] = "channels_last";
    c["interpolation"] = options_.interpolation;
  }
  return c;
}

UpSamplingOptions UpSampling::options_from_config(const Json& c, const std::string& cls, int rank, std::vector<int>& size) {
  config::check_keys(c, cls, {"size", "data_format", "interpolation"});
  config::require_channels_last(c, cls);
  size = config::int_tuple(c, "size", rank, {2});
  UpSamplingOptions o;
  o.interpolation = c.value("interpolation", std::string("nearest"));
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

}  // namespace strata
