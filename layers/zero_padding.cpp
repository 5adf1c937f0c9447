#include "layers/zero_padding.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

SpatialResize::SpatialResize(bool crop, int rank, const SpatialPairs& amounts, const LayerOptions& options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), crop_(crop), rank_(rank),
      amounts_(amounts.expand(rank, crop ? "cropping" : "padding")) {}

Tensor SpatialResize::call(const Tensor& x) {
  if (x.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 2, x.shape().to_string()));
  if (!crop_) {
    std::vector<std::array<std::int64_t, 2>> widths{{0, 0}};
    for (const auto& [before, after] : amounts_) widths.push_back({before, after});
    widths.push_back({0, 0});
    return ops::pad(x, widths);
  }
  std::vector<std::int64_t> begin{0}, size{-1};
  for (int i = 0; i < rank_; ++i) {
    const auto [before, after] = amounts_[std::size_t(i)];
    const std::int64_t extent = x.shape()[i + 1];
    if (extent >= 0 && before + after >= extent)
      throw std::invalid_argument(fmt::format("cropping ({}, {}) leaves nothing of axis {} of input {}", before, after, i + 1,
                                              x.shape().to_string()));
    begin.push_back(before);
    size.push_back(extent < 0 ? -1 - after : extent - before - after);  // unknown: up to `after` short of its end
  }
  begin.push_back(0);
  size.push_back(-1);
  return ops::slice(x, begin, size);
}

Json SpatialResize::get_config() const {
  Json c = Layer::get_config();
  Json pairs = Json::array();
  for (const auto& [before, after] : amounts_) pairs.push_back({before, after});
  // Keras writes the 1-D form as one flat (left, right) pair.
  c[crop_ ? "cropping" : "padding"] = rank_ == 1 ? pairs[0] : pairs;
  if (!(crop_ && rank_ == 1)) c["data_format"] = "channels_last";  // Keras's Cropping1D has no data_format
  return c;
}

SpatialPairs SpatialResize::amounts_from_config(const Json& c, const std::string& cls, bool crop, const SpatialPairs& fallback) {
  const char* key = crop ? "cropping" : "padding";
  config::check_keys(c, cls, {key, "data_format"});
  config::require_channels_last(c, cls);
  if (!c.contains(key) || c.at(key).is_null()) return fallback;
  return SpatialPairs::from_json(c.at(key), key);
}

}  // namespace strata
