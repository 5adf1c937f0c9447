#include "layers/adaptive_pooling.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

AdaptivePooling::AdaptivePooling(bool max, int rank, const IntTuple& output_size, AdaptivePoolingOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), max_(max), rank_(rank), output_size_(output_size.expand(rank, "output_size")) {
  for (int n : output_size_)
    if (n < 1) throw std::invalid_argument(fmt::format("{}: output_size must be positive, got {}", name(), fmt::join(output_size_, ", ")));
}

Tensor AdaptivePooling::call(const Tensor& inputs) {
  if (inputs.rank() != rank_ + 2)
    throw std::invalid_argument(fmt::format("{} '{}' expects inputs of rank {} (batch, {} spatial axes, channels), got {}", class_name(),
                                            name(), rank_ + 2, rank_, inputs.shape().to_string()));
  for (int a = 1; a <= rank_; ++a)
    if (inputs.shape()[a] < 0) return deferred_call({inputs}, Json::object())[0];
  Tensor x = inputs;
  for (int a = 1; a <= rank_; ++a) {
    const std::int64_t length = x.shape()[a], n = output_size_[std::size_t(a - 1)];
    if (length == n) continue;  // windows of one element
    if (length == 0)
      throw std::invalid_argument(fmt::format("{} '{}': cannot pool an empty axis of {}", class_name(), name(), inputs.shape().to_string()));
    std::vector<Tensor> windows;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t start = i * length / n, end = ((i + 1) * length + n - 1) / n;
      std::vector<std::int64_t> begin(std::size_t(x.rank()), 0), size(std::size_t(x.rank()), -1);
      begin[std::size_t(a)] = start;
      size[std::size_t(a)] = end - start;
      const Tensor window = ops::slice(x, begin, size);
      windows.push_back(max_ ? ops::max(window, {a}, true) : ops::mean(window, {a}, true));
    }
    x = windows.size() == 1 ? windows[0] : ops::concatenate(windows, a);
  }
  return x;
}

Json AdaptivePooling::get_config() const {
  Json c = Layer::get_config();
  c["output_size"] = output_size_;
  c["data_format"] = "channels_last";
  return c;
}

std::vector<int> AdaptivePooling::output_size_from_config(const Json& c, const std::string& class_name, int rank) {
  config::check_keys(c, class_name, {"output_size", "data_format"});
  config::require_channels_last(c, class_name);
  if (!c.contains("output_size") || c.at("output_size").is_null())
    throw std::invalid_argument(fmt::format("{}: 'output_size' must be given", class_name));
  return config::int_tuple(c, "output_size", rank, {});
}

}  // namespace strata
