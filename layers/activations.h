// Activation functions by their Keras names, as layers' `activation` argument takes them.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace strata {

// relu, relu6, sigmoid, tanh, softmax, log_softmax, gelu (exact erf form, as keras.activations.gelu),
// elu, selu, softplus, softsign, leaky_relu (slope 0.2), swish/silu, hard_sigmoid, exponential, linear
// (also spelled "" or "None"). An unknown name throws with the list.
Tensor apply_activation(const std::string& name, const Tensor& x);
// Throws the same error as apply_activation for a name it would reject.
void check_activation(const std::string& name);
std::vector<std::string> activation_names();

}  // namespace strata
