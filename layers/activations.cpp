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
      // Keras 3's other activations by name, composed from the primitives above (their defaults:
      // thresholds 0.5, celu's alpha 1, squareplus's b 4, glu over the last axis).
      {"hard_silu", [](const Tensor& x) { return ops::multiply(x, ops::hard_sigmoid(x)); }},
      {"hard_swish", [](const Tensor& x) { return ops::multiply(x, ops::hard_sigmoid(x)); }},
      {"hard_tanh", [](const Tensor& x) { return ops::clip(x, -1.f, 1.f); }},
      {"mish", [](const Tensor& x) { return ops::multiply(x, ops::tanh(ops::softplus(x))); }},
      {"log_sigmoid", [](const Tensor& x) { return ops::negative(ops::softplus(ops::negative(x))); }},
      {"tanh_shrink", [](const Tensor& x) { return ops::subtract(x, ops::tanh(x)); }},
      {"celu", [](const Tensor& x) { return ops::elu(x, 1.f); }},  // alpha * elu(x / alpha, 1) with alpha 1
      {"soft_shrink", [](const Tensor& x) { return ops::subtract(x, ops::clip(x, -0.5f, 0.5f)); }},
      {"hard_shrink", [](const Tensor& x) { return ops::multiply(x, ops::greater(ops::abs(x), 0.5f)); }},
      {"squareplus", [](const Tensor& x) { return ops::multiply(ops::add(x, ops::sqrt(ops::add(ops::square(x), 4.f))), 0.5f); }},
      // (x + 1)^2 / 4 between -1 and 1, 0 below, x above.
      {"sparse_plus",
       [](const Tensor& x) {
         return ops::add(ops::multiply(ops::square(ops::add(ops::clip(x, -1.f, 1.f), 1.f)), 0.25f), ops::relu(ops::subtract(x, 1.f)));
       }},
      {"sparse_sigmoid", [](const Tensor& x) { return ops::clip(ops::multiply(ops::add(x, 1.f), 0.5f), 0.f, 1.f); }},
      {"glu",
       [](const Tensor& x) {
         const std::vector<Tensor> halves = ops::split(x, 2, -1);
         return ops::multiply(halves[0], ops::sigmoid(halves[1]));
       }},
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
