// Convolution and pooling of rank-5 inputs (batch, depth, height, width, channels), composed from the 2-D
// primitives: each tap of the window along depth gathers the depth planes it reads, folded into the batch,
// and the 2-D operation runs over height and width; the taps' results are summed (convolution), maxed or
// averaged (pooling). Their gradients come from the primitives' rules; ops::conv, ops::max_pool and
// ops::average_pool call these for rank-5 inputs.
#pragma once

#include <string>
#include <vector>

#include "graph/ops.h"

namespace strata::ops::volume {

// Kernel (kd, kh, kw, in/groups, out); strides and dilation_rate one number or three.
Tensor conv(const Tensor& x, const Tensor& kernel, std::vector<int> strides, const std::string& padding, std::vector<int> dilation_rate);
// Kernel (kd, kh, kw, out, in), as ops::conv_transpose: one 2-D transposed convolution per depth tap, each
// spread over the strided depth planes it reaches and summed.
Tensor conv_transpose(const Tensor& x, const Tensor& kernel, std::vector<int> strides, const std::string& padding,
                      std::vector<int> output_padding, std::vector<int> dilation_rate);
Tensor pool(bool max, const Tensor& x, std::vector<int> pool_size, std::vector<int> strides, const std::string& padding);

}  // namespace strata::ops::volume
