// Fused recurrent cells on the CPU: one pass over each sample's units, gates recomputed from the
// pre-activations in the backward kernels rather than stored.
#include <fmt/format.h>

#include <Eigen/Core>

#include <algorithm>
#include <stdexcept>

#include "backends/cpu/cpu_backend.h"
#include "backends/kernel_geometry.h"

namespace strata::cpu {

namespace {

// Units are processed in chunks held on the stack (no heap), with Eigen's vectorised tanh and logistic:
// the cell's transcendental functions, not its arithmetic, set its speed.
constexpr std::int64_t kChunk = 256;
using Chunk = Eigen::Array<float, Eigen::Dynamic, 1, Eigen::ColMajor, kChunk, 1>;
using In = Eigen::Map<const Eigen::ArrayXf>;
using Out = Eigen::Map<Eigen::ArrayXf>;

const float* in_data(std::span<const TensorView> v, std::size_t i) { return static_cast<const float*>(v[i].data); }
float* out_data(std::span<const TensorView> v, std::size_t i) { return static_cast<float*>(v[i].data); }

}  // namespace

void CpuBackend::rnn_cell(RnnCellOp op, std::span<const TensorView> in, std::span<const TensorView> out) {
  check_rnn_cell_operands(op, in.size(), out.size());
  const bool lstm = op == RnnCellOp::lstm || op == RnnCellOp::lstm_grad_z || op == RnnCellOp::lstm_grad_c;
  const std::int64_t width = in[0].shape[in[0].shape.rank() - 1];
  const std::int64_t u = width / (lstm ? 4 : 3);
  const std::int64_t rows = width > 0 ? in[0].numel() / width : 0;
  parallel_for(rows, 16 * u, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t b = begin; b < end; ++b)
      for (std::int64_t j = 0; j < u; j += kChunk) {
        const std::int64_t n = std::min(kChunk, u - j);
        const float* z = in_data(in, 0) + b * width + j;  // column j of the first gate; gate k at + k * u
        auto gate = [&](const float* base, int k) { return In(base + k * u, n); };
        auto row = [&](std::span<const TensorView> v, std::size_t i) { return In(in_data(v, i) + b * u + j, n); };
        switch (op) {
          case RnnCellOp::lstm: {
            const Chunk i = gate(z, 0).logistic(), f = gate(z, 1).logistic(), g = gate(z, 2).tanh(), o = gate(z, 3).logistic();
            Out c(out_data(out, 1) + b * u + j, n);
            c = f * row(in, 1) + i * g;
            Out(out_data(out, 0) + b * u + j, n) = o * c.tanh();
            break;
          }
          case RnnCellOp::lstm_grad_z: {
            const Chunk i = gate(z, 0).logistic(), f = gate(z, 1).logistic(), g = gate(z, 2).tanh(), o = gate(z, 3).logistic();
            const Chunk tc = row(in, 2).tanh();
            const In dh = row(in, 3);
            const Chunk dc = row(in, 4) + dh * o * (1.f - tc * tc);
            float* dz = out_data(out, 0) + b * width + j;
            Out(dz, n) = dc * g * i * (1.f - i);
            Out(dz + u, n) = dc * row(in, 1) * f * (1.f - f);
            Out(dz + 2 * u, n) = dc * i * (1.f - g * g);
            Out(dz + 3 * u, n) = dh * tc * o * (1.f - o);
            break;
          }
          case RnnCellOp::lstm_grad_c: {
            const Chunk f = gate(z, 1).logistic(), o = gate(z, 3).logistic(), tc = row(in, 1).tanh();
            Out(out_data(out, 0) + b * u + j, n) = (row(in, 3) + row(in, 2) * o * (1.f - tc * tc)) * f;
            break;
          }
          default: {
            // GRU, reset after the recurrent product: zg = sig(x_z + r_z), rg = sig(x_r + r_r),
            // hh = tanh(x_h + rg * r_h), h = zg * h_prev + (1 - zg) * hh.
            const float* r = in_data(in, 1) + b * width + j;
            const Chunk zg = (gate(z, 0) + gate(r, 0)).logistic(), rg = (gate(z, 1) + gate(r, 1)).logistic();
            const Chunk hh = (gate(z, 2) + rg * gate(r, 2)).tanh();
            const In h_prev = row(in, 2);
            if (op == RnnCellOp::gru) {
              Out(out_data(out, 0) + b * u + j, n) = zg * h_prev + (1.f - zg) * hh;
              break;
            }
            const In dh = row(in, 3);
            if (op == RnnCellOp::gru_grad_h) {
              Out(out_data(out, 0) + b * u + j, n) = dh * zg;
              break;
            }
            const Chunk d_hpre = dh * (1.f - zg) * (1.f - hh * hh);
            float* o = out_data(out, 0) + b * width + j;
            Out(o, n) = dh * (h_prev - hh) * zg * (1.f - zg);
            Out(o + u, n) = d_hpre * gate(r, 2) * rg * (1.f - rg);
            Out(o + 2 * u, n) = op == RnnCellOp::gru_grad_x ? d_hpre : Chunk(d_hpre * rg);
            break;
          }
        }
      }
  });
}

}  // namespace strata::cpu
