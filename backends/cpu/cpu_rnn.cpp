// Fused recurrent cells on the CPU: one pass over each sample's units, gates recomputed from the
// pre-activations in the backward kernels rather than stored.
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"

namespace strata::cpu {

namespace {

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

const float* in_data(std::span<const TensorView> v, std::size_t i) { return static_cast<const float*>(v[i].data); }
float* out_data(std::span<const TensorView> v, std::size_t i) { return static_cast<float*>(v[i].data); }

}  // namespace

void CpuBackend::rnn_cell(RnnCellOp op, std::span<const TensorView> in, std::span<const TensorView> out) {
  const std::size_t want_in[] = {2, 5, 4, 3, 4, 4, 4}, want_out[] = {2, 1, 1, 1, 1, 1, 1};
  if (in.size() != want_in[int(op)] || out.size() != want_out[int(op)])
    throw std::invalid_argument(fmt::format("{}: wrong number of operands", rnn_cell_op_name(op)));
  const bool lstm = op == RnnCellOp::lstm || op == RnnCellOp::lstm_grad_z || op == RnnCellOp::lstm_grad_c;
  const std::int64_t width = in[0].shape[in[0].shape.rank() - 1];
  const std::int64_t u = width / (lstm ? 4 : 3);
  const std::int64_t rows = width > 0 ? in[0].numel() / width : 0;
  parallel_for(rows, 16 * u, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t b = begin; b < end; ++b) {
      const float* z = in_data(in, 0) + b * width;
      switch (op) {
        case RnnCellOp::lstm: {
          const float* c_prev = in_data(in, 1) + b * u;
          float* h = out_data(out, 0) + b * u;
          float* c = out_data(out, 1) + b * u;
          for (std::int64_t j = 0; j < u; ++j) {
            const float i = sigmoid(z[j]), f = sigmoid(z[u + j]), g = std::tanh(z[2 * u + j]), o = sigmoid(z[3 * u + j]);
            c[j] = f * c_prev[j] + i * g;
            h[j] = o * std::tanh(c[j]);
          }
          break;
        }
        case RnnCellOp::lstm_grad_z: {
          const float *c_prev = in_data(in, 1) + b * u, *c = in_data(in, 2) + b * u;
          const float *dh = in_data(in, 3) + b * u, *dc_in = in_data(in, 4) + b * u;
          float* dz = out_data(out, 0) + b * width;
          for (std::int64_t j = 0; j < u; ++j) {
            const float i = sigmoid(z[j]), f = sigmoid(z[u + j]), g = std::tanh(z[2 * u + j]), o = sigmoid(z[3 * u + j]);
            const float tc = std::tanh(c[j]);
            const float dc = dc_in[j] + dh[j] * o * (1.f - tc * tc);
            dz[j] = dc * g * i * (1.f - i);
            dz[u + j] = dc * c_prev[j] * f * (1.f - f);
            dz[2 * u + j] = dc * i * (1.f - g * g);
            dz[3 * u + j] = dh[j] * tc * o * (1.f - o);
          }
          break;
        }
        case RnnCellOp::lstm_grad_c: {
          const float *c = in_data(in, 1) + b * u, *dh = in_data(in, 2) + b * u, *dc_in = in_data(in, 3) + b * u;
          float* dc_prev = out_data(out, 0) + b * u;
          for (std::int64_t j = 0; j < u; ++j) {
            const float f = sigmoid(z[u + j]), o = sigmoid(z[3 * u + j]), tc = std::tanh(c[j]);
            dc_prev[j] = (dc_in[j] + dh[j] * o * (1.f - tc * tc)) * f;
          }
          break;
        }
        default: {
          // GRU, reset after the recurrent product: zg = sig(x_z + r_z), rg = sig(x_r + r_r),
          // hh = tanh(x_h + rg * r_h), h = zg * h_prev + (1 - zg) * hh.
          const float *r = in_data(in, 1) + b * width, *h_prev = in_data(in, 2) + b * u;
          const float* dh = op == RnnCellOp::gru ? nullptr : in_data(in, 3) + b * u;
          float* o = out_data(out, 0) + b * (op == RnnCellOp::gru || op == RnnCellOp::gru_grad_h ? u : width);
          for (std::int64_t j = 0; j < u; ++j) {
            const float zg = sigmoid(z[j] + r[j]), rg = sigmoid(z[u + j] + r[u + j]);
            const float hh = std::tanh(z[2 * u + j] + rg * r[2 * u + j]);
            if (op == RnnCellOp::gru) {
              o[j] = zg * h_prev[j] + (1.f - zg) * hh;
              continue;
            }
            if (op == RnnCellOp::gru_grad_h) {
              o[j] = dh[j] * zg;
              continue;
            }
            const float d_zpre = dh[j] * (h_prev[j] - hh) * zg * (1.f - zg);
            const float d_hpre = dh[j] * (1.f - zg) * (1.f - hh * hh);
            const float d_rpre = d_hpre * r[2 * u + j] * rg * (1.f - rg);
            o[j] = d_zpre;
            o[u + j] = d_rpre;
            o[2 * u + j] = op == RnnCellOp::gru_grad_x ? d_hpre : d_hpre * rg;
          }
          break;
        }
      }
    }
  });
}

}  // namespace strata::cpu
