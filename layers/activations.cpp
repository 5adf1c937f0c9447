#include "layers/activations.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>
#include <map>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

namespace {

const std::map<std::string, std::function<Tensor(const Tensor&)>>& table() {
  static const std::map<std::string, std::function<Tensor(const Tensor&)>> t = {
      {"linear", [](const Tensor& x) { return x; }},
      {"relu", [](const Tensor& x) { return ops::relu(x); }},
      {"relu6", [](const Tensor& x) { return ops::relu6(x); }},
      {"sigmoid", [](const Tensor& x) { return ops::sigmoid(x); }},
      {"tanh", [](const Tensor& x) { return ops::tanh(x); }},
      {"softmax", [](const Tensor& x) { return ops::softmax(x, -1); }},
      {"log_softmax", [](const Tensor& x) { return ops::log_softmax(x, -1); }},
      {"gelu", [](const Tensor& x) { return ops::gelu(x, false); }},
      {"elu", [](const Tensor& x) { return ops::elu(x, 1.f); }},
      {"selu", [](const Tensor& x) { return ops::selu(x); }},
      {"softplus", [](const Tensor& x) { return ops::softplus(x); }},
      {"softsign", [](const Tensor& x) { return ops::softsign(x); }},
      {"leaky_relu", [](const Tensor& x) { return ops::leaky_relu(x, 0.2f); }},
      {"silu", [](const Tensor& x) { return ops::silu(x); }},
      {"swish", [](const Tensor& x) { return ops::silu(x); }},
      {"hard_sigmoid", [](const Tensor& x) { return ops::hard_sigmoid(x); }},
      {"exponential", [](const Tensor& x) { return ops::exp(x); }},
  };
  return t;
}

}  // namespace

std::vector<std::string> activation_names() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  return names;
}

void check_activation(const std::string& name) {
  if (name.empty() || name == "None" || table().count(name)) return;
  throw std::invalid_argument(fmt::format("unknown activation '{}' (known: {})", name, fmt::join(activation_names(), ", ")));
}

Tensor apply_activation(const std::string& name, const Tensor& x) {
  if (name.empty() || name == "None") return x;
  check_activation(name);
  return table().at(name)(x);
}

}  // namespace strata
