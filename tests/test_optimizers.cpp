// Optimizers against Keras 3's update rules, written out independently here in double, over several steps.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "api/strata.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata {
namespace {

constexpr int kSteps = 6;

// Loss 0.5 * sum(w^2) + sum(c * w): the gradient is w + c, so the reference knows it exactly.
struct Problem {
  Shape shape{12};
  std::vector<float> w0 = test::random_vector(std::size_t(shape.numel()), -1.f, 1.f, 21);
  std::vector<float> c = test::random_vector(std::size_t(shape.numel()), -2.f, 2.f, 22);

  Problem() = default;
  explicit Problem(Shape s) : shape(s), w0(test::random_vector(std::size_t(s.numel()), -1.f, 1.f, 21)),
                              c(test::random_vector(std::size_t(s.numel()), -2.f, 2.f, 22)) {}

  // Strata's weights after each step.
  std::vector<std::vector<float>> run(const std::shared_ptr<Optimizer>& opt) const {
    clear_session();
    auto w = std::make_shared<Variable>("w", shape);
    w->assign(w0);
    const Tensor c_in = ops::placeholder(shape, DType::float32, "c");
    const Tensor wt = ops::variable(w, c_in);
    const Tensor loss = ops::add(ops::multiply(ops::sum(ops::square(wt)), 0.5f), ops::sum(ops::multiply(c_in, wt)));
    Program p({c_in}, {loss}, loss, opt);
    std::vector<std::vector<float>> out;
    const TensorView feed{const_cast<float*>(c.data()), DType::float32, shape};
    for (int s = 0; s < kSteps; ++s) {
      p.run(Mode::training, std::span(&feed, 1));
      out.push_back(w->to_vector());
    }
    return out;
  }

  // The reference: `update(w, g, step)` changes w in place from the gradient; the gradient passes through
  // `transform` (clipping) first.
  std::vector<std::vector<double>> reference(
      const std::function<void(std::vector<double>&, const std::vector<double>&, int)>& update,
      const std::function<void(std::vector<double>&)>& transform = nullptr) const {
    std::vector<double> w(w0.begin(), w0.end());
    std::vector<std::vector<double>> out;
    for (int s = 0; s < kSteps; ++s) {
      std::vector<double> g(w.size());
      for (std::size_t i = 0; i < w.size(); ++i) g[i] = w[i] + c[i];
      if (transform) transform(g);
      update(w, g, s);
      out.push_back(w);
    }
    return out;
  }
};

void expect_close(const std::vector<std::vector<float>>& got, const std::vector<std::vector<double>>& want, const char* what) {
  for (int s = 0; s < kSteps; ++s)
    for (std::size_t i = 0; i < want[std::size_t(s)].size(); ++i)
      ASSERT_NEAR(got[std::size_t(s)][i], want[std::size_t(s)][i], 2e-5 * (1 + std::abs(want[std::size_t(s)][i])))
          << what << " step " << s << " element " << i;
}

TEST(Optimizers, SGDPlainMomentumNesterov) {
  Problem p;
  for (const float momentum : {0.f, 0.9f})
    for (const bool nesterov : {false, true}) {
      std::vector<double> m(12, 0.0);
      const double lr = 0.05;
      auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
        for (std::size_t i = 0; i < w.size(); ++i) {
          if (momentum == 0.f) {
            w[i] -= lr * g[i];
            continue;
          }
          m[i] = momentum * m[i] - lr * g[i];
          w[i] += nesterov ? momentum * m[i] - lr * g[i] : m[i];
        }
      });
      expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = lr, .momentum = momentum, .nesterov = nesterov})), want, "SGD");
    }
}

std::function<void(std::vector<double>&, const std::vector<double>&, int)> adam_rule(double lr, bool amsgrad, double weight_decay) {
  auto m = std::make_shared<std::vector<double>>(12, 0.0), v = std::make_shared<std::vector<double>>(12, 0.0),
       vhat = std::make_shared<std::vector<double>>(12, 0.0);
  return [=](std::vector<double>& w, const std::vector<double>& g, int step) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7, t = step + 1;
    const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (std::size_t i = 0; i < w.size(); ++i) {
      w[i] -= w[i] * weight_decay * lr;
      (*m)[i] += (g[i] - (*m)[i]) * (1 - b1);
      (*v)[i] += (g[i] * g[i] - (*v)[i]) * (1 - b2);
      double denom = (*v)[i];
      if (amsgrad) denom = (*vhat)[i] = std::max((*vhat)[i], (*v)[i]);
      w[i] -= alpha * (*m)[i] / (std::sqrt(denom) + eps);  // epsilon outside the bias correction
    }
  };
}

TEST(Optimizers, AdamAmsgradAdamW) {
  Problem p;
  expect_close(p.run(std::make_shared<Adam>(AdamOptions{.learning_rate = 0.01})), p.reference(adam_rule(0.01, false, 0)), "Adam");
  expect_close(p.run(std::make_shared<Adam>(AdamOptions{.learning_rate = 0.01, .amsgrad = true})), p.reference(adam_rule(0.01, true, 0)),
               "Adam amsgrad");
  expect_close(p.run(std::make_shared<AdamW>(AdamWOptions{.learning_rate = 0.01})), p.reference(adam_rule(0.01, false, 0.004)), "AdamW");
  expect_close(p.run(std::make_shared<AdamW>(AdamWOptions{.learning_rate = 0.01, .weight_decay = 0.1f})),
               p.reference(adam_rule(0.01, false, 0.1)), "AdamW 0.1");
}

TEST(Optimizers, RMSpropPlainCenteredMomentum) {
  Problem p;
  for (const bool centered : {false, true})
    for (const float momentum : {0.f, 0.5f}) {
      std::vector<double> vel(12, 0.0), avg(12, 0.0), mom(12, 0.0);
      const double lr = 0.01, rho = 0.9, eps = 1e-7;
      auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
        for (std::size_t i = 0; i < w.size(); ++i) {
          vel[i] = rho * vel[i] + (1 - rho) * g[i] * g[i];
          double denom = vel[i];
          if (centered) {
            avg[i] = rho * avg[i] + (1 - rho) * g[i];
            denom -= avg[i] * avg[i];
          }
          const double increment = lr * g[i] / std::sqrt(denom + eps);  // epsilon inside the square root
          if (momentum > 0) {
            mom[i] = momentum * mom[i] + increment;
            w[i] -= mom[i];
          } else {
            w[i] -= increment;
          }
        }
      });
      expect_close(p.run(std::make_shared<RMSprop>(RMSpropOptions{.learning_rate = lr, .momentum = momentum, .centered = centered})),
                   want, "RMSprop");
    }
}

TEST(Optimizers, Adagrad) {
  Problem p;
  std::vector<double> acc(12, 0.1);
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
    for (std::size_t i = 0; i < w.size(); ++i) {
      acc[i] += g[i] * g[i];
      w[i] -= 0.05 * g[i] / std::sqrt(acc[i] + 1e-7);
    }
  });
  expect_close(p.run(std::make_shared<Adagrad>(AdagradOptions{.learning_rate = 0.05})), want, "Adagrad");
}

TEST(Optimizers, Nadam) {
  Problem p;
  std::vector<double> m(12, 0.0), v(12, 0.0);
  double u_product = 1.0;
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7, lr = 0.01, t = step + 1;
    const double u_t = b1 * (1 - 0.5 * std::pow(0.96, t));
    const double u_t1 = b1 * (1 - 0.5 * std::pow(0.96, t + 1));
    const double u_product_t = u_product * u_t, u_product_t1 = u_product_t * u_t1;
    u_product = u_product_t;
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] += (g[i] - m[i]) * (1 - b1);
      v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
      const double m_hat = u_t1 * m[i] / (1 - u_product_t1) + (1 - u_t) * g[i] / (1 - u_product_t);
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      w[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  });
  expect_close(p.run(std::make_shared<Nadam>(NadamOptions{.learning_rate = 0.01})), want, "Nadam");
}

TEST(Optimizers, Adamax) {
  Problem p;
  std::vector<double> m(12, 0.0), norm(12, 0.0);
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-7, lr = 0.02, t = step + 1;
    for (std::size_t i = 0; i < w.size(); ++i) {
      m[i] += (g[i] - m[i]) * (1 - b1);
      norm[i] = std::max(b2 * norm[i], std::abs(g[i]));
      w[i] -= lr * m[i] / ((1 - std::pow(b1, t)) * (norm[i] + eps));
    }
  });
  expect_close(p.run(std::make_shared<Adamax>(AdamaxOptions{.learning_rate = 0.02})), want, "Adamax");
}

TEST(Optimizers, Lion) {
  Problem p;
  std::vector<double> m(12, 0.0);
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
    const double b1 = 0.8, b2 = 0.99, lr = 0.003;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const double c = m[i] * b1 + g[i] * (1 - b1);
      w[i] -= lr * double((c > 0) - (c < 0));
      m[i] = m[i] * b2 + g[i] * (1 - b2);
    }
  });
  expect_close(p.run(std::make_shared<Lion>(LionOptions{.learning_rate = 0.003, .beta_1 = 0.8f})), want, "Lion");
  EXPECT_THROW(Lion(LionOptions{.beta_1 = 0.f}), std::invalid_argument);
}

TEST(Optimizers, Adadelta) {
  Problem p;
  std::vector<double> grads(12, 0.0), deltas(12, 0.0);
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
    const double rho = 0.9, eps = 1e-7, lr = 1.0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      grads[i] = rho * grads[i] + (1 - rho) * g[i] * g[i];
      const double delta = -std::sqrt(deltas[i] + eps) * g[i] / std::sqrt(grads[i] + eps);
      deltas[i] = rho * deltas[i] + (1 - rho) * delta * delta;
      w[i] += lr * delta;
    }
  });
  expect_close(p.run(std::make_shared<Adadelta>(AdadeltaOptions{.learning_rate = 1.0, .rho = 0.9f})), want, "Adadelta");
}

TEST(Optimizers, FtrlWithItsRegularizations) {
  struct Case {
    FtrlOptions options;
    const char* what;
  };
  const std::vector<Case> cases = {
      {{.learning_rate = 0.1}, "defaults"},
      {{.learning_rate = 0.2, .learning_rate_power = -0.7f, .initial_accumulator_value = 0.3f, .l1_regularization_strength = 0.05f,
        .l2_regularization_strength = 0.1f, .l2_shrinkage_regularization_strength = 0.02f, .beta = 0.5f},
       "l1 l2 shrinkage beta"},
      {{.learning_rate = 0.1, .learning_rate_power = 0.f, .l1_regularization_strength = 0.5f}, "fixed rate, strong l1"},
  };
  for (const Case& k : cases) {
    Problem p;
    const FtrlOptions& o = k.options;
    std::vector<double> accum(12, o.initial_accumulator_value), linear(12, 0.0);
    auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int) {
      const double lr = o.learning_rate.value(), power = -o.learning_rate_power, l1 = o.l1_regularization_strength;
      const double l2 = o.l2_regularization_strength + o.beta / (2 * lr);
      for (std::size_t i = 0; i < w.size(); ++i) {
        const double next = accum[i] + g[i] * g[i];
        linear[i] += g[i] + 2 * o.l2_shrinkage_regularization_strength * w[i] - (std::pow(next, power) - std::pow(accum[i], power)) / lr * w[i];
        const double quadratic = std::pow(next, power) / lr + 2 * l2;
        w[i] = (std::clamp(linear[i], -l1, l1) - linear[i]) / quadratic;
        accum[i] = next;
      }
    });
    expect_close(p.run(std::make_shared<Ftrl>(o)), want, k.what);
  }
  // An L1 strength above every accumulated |linear| term keeps the weights at exactly zero.
  Problem p;
  const auto strong = p.run(std::make_shared<Ftrl>(FtrlOptions{.learning_rate = 0.1, .l1_regularization_strength = 100.f}));
  for (float w : strong.back()) EXPECT_EQ(w, 0.f);
  EXPECT_THROW(Ftrl(FtrlOptions{.learning_rate_power = 0.5f}), std::invalid_argument);
  EXPECT_THROW(Ftrl(FtrlOptions{.l1_regularization_strength = -1.f}), std::invalid_argument);
}

TEST(Optimizers, LambScalesEachVariableByItsNormRatio) {
  for (const float decay : {0.f, 0.1f}) {
    Problem p;
    std::vector<double> m(12, 0.0), v(12, 0.0);
    auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
      const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-7, t = step + 1;
      for (double& x : w) x -= x * decay * lr;
      std::vector<double> update(w.size());
      double w_norm = 0, u_norm = 0;
      for (std::size_t i = 0; i < w.size(); ++i) {
        m[i] += (g[i] - m[i]) * (1 - b1);
        v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
        update[i] = (m[i] / (1 - std::pow(b1, t))) / (std::sqrt(v[i] / (1 - std::pow(b2, t))) + eps);
        w_norm += w[i] * w[i];
        u_norm += update[i] * update[i];
      }
      const double ratio = w_norm > 0 && u_norm > 0 ? std::sqrt(w_norm / u_norm) : 1.0;
      for (std::size_t i = 0; i < w.size(); ++i) w[i] -= ratio * lr * update[i];
    });
    expect_close(p.run(std::make_shared<Lamb>(LambOptions{.learning_rate = 0.05, .weight_decay = decay})), want,
                 decay > 0 ? "Lamb with decay" : "Lamb");
  }
}

// Keras's Adafactor in double: a weight of rank >= 2 keeps the means of g^2 + epsilon_1 over its last axis (r)
// and its second-last axis (c); rank 0 or 1 keeps the full second moment.
TEST(Optimizers, AdafactorFactoredAndNot) {
  struct Case {
    Shape shape;
    AdafactorOptions options;
    const char* what;
  };
  const std::vector<Case> cases = {
      {Shape{12}, {.learning_rate = 0.1}, "vector"},
      {Shape{3, 4}, {.learning_rate = 0.1}, "matrix"},
      {Shape{2, 3, 2}, {.learning_rate = 0.8, .clip_threshold = 0.5f, .weight_decay = 0.1f}, "batch of matrices, clipped, decayed"},
      {Shape{4, 3}, {.learning_rate = 0.3, .beta_2_decay = -0.5f, .epsilon_2 = 2.f}, "parameter scale below epsilon_2"},
  };
  for (const Case& k : cases) {
    const AdafactorOptions& o = k.options;
    Problem p(k.shape);
    const std::int64_t n = k.shape.numel();
    const bool factored = k.shape.rank() >= 2;
    const std::int64_t cols = factored ? k.shape[k.shape.rank() - 1] : 1, rows = factored ? k.shape[k.shape.rank() - 2] : 1;
    const std::int64_t batch = n / (rows * cols);
    std::vector<double> r(std::size_t(batch * rows), 0.0), c(std::size_t(batch * cols), 0.0), v(std::size_t(n), 0.0);
    auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
      const double lr = o.learning_rate.value(), t = step + 1;
      for (double& x : w) x -= x * double(o.weight_decay.value_or(0.f)) * lr;
      double w_square = 0;
      for (double x : w) w_square += x * x;
      const double rho = std::min(lr, 1 / std::sqrt(t));
      const double alpha = std::max(double(o.epsilon_2), std::sqrt(w_square / double(n))) * rho;
      const double decay = 1 - std::pow(t, double(o.beta_2_decay));
      auto g2 = [&](std::int64_t b, std::int64_t i, std::int64_t j) {
        const double x = g[std::size_t((b * rows + i) * cols + j)];
        return x * x + double(o.epsilon_1);
      };
      if (factored) {
        for (std::int64_t b = 0; b < batch; ++b) {
          double r_mean = 0;
          for (std::int64_t i = 0; i < rows; ++i) {
            double mean = 0;
            for (std::int64_t j = 0; j < cols; ++j) mean += g2(b, i, j) / double(cols);
            double& ri = r[std::size_t(b * rows + i)];
            ri = decay * ri + (1 - decay) * mean;
            r_mean += ri / double(rows);
          }
          for (std::int64_t j = 0; j < cols; ++j) {
            double mean = 0;
            for (std::int64_t i = 0; i < rows; ++i) mean += g2(b, i, j) / double(rows);
            double& cj = c[std::size_t(b * cols + j)];
            cj = decay * cj + (1 - decay) * mean;
          }
          for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < cols; ++j)
              v[std::size_t((b * rows + i) * cols + j)] = r[std::size_t(b * rows + i)] / r_mean * c[std::size_t(b * cols + j)];
        }
      } else {
        for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = decay * v[std::size_t(i)] + (1 - decay) * g2(0, 0, i);
      }
      double u_square = 0;
      for (std::int64_t i = 0; i < n; ++i) u_square += g[std::size_t(i)] * g[std::size_t(i)] / v[std::size_t(i)];
      const double scale = alpha / std::max(1.0, std::sqrt(u_square / double(n)) / double(o.clip_threshold));
      for (std::int64_t i = 0; i < n; ++i) w[std::size_t(i)] -= scale * g[std::size_t(i)] / std::sqrt(v[std::size_t(i)]);
    });
    expect_close(p.run(std::make_shared<Adafactor>(o)), want, k.what);
  }
}

TEST(Optimizers, AdafactorSlotsAsKerasKeepsThem) {
  clear_session();
  auto kernel = std::make_shared<Variable>("dense/kernel", Shape{2, 3, 4}), bias = std::make_shared<Variable>("dense/bias", Shape{4});
  Adafactor opt;
  opt.build({kernel, bias}, get_backend("cpu"));
  EXPECT_EQ(opt.slots(0)[0]->shape(), (Shape{2, 3}));
  EXPECT_EQ(opt.slots(0)[1]->shape(), (Shape{2, 4}));
  EXPECT_EQ(opt.slots(0)[2]->shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(opt.slots(1)[0]->shape(), Shape());
  EXPECT_EQ(opt.slots(1)[1]->shape(), Shape());
  // Keras's optimizer.variables: iteration, learning rate, then per weight r, c and the velocity.
  const auto state = opt.keras_state({kernel, bias});
  ASSERT_EQ(state.size(), 8u);
  EXPECT_EQ(state[2].name, "dense_kernel_r");
  EXPECT_EQ(state[3].name, "dense_kernel_c");
  EXPECT_EQ(state[2].shape, (Shape{2, 3}));
  EXPECT_EQ(state[4].name, "dense_kernel_velocity");
  EXPECT_EQ(state[5].shape, Shape());
  // A state whose factored moment has the weight's full shape does not fit.
  auto wrong = state;
  wrong[2].shape = Shape{2, 3, 4};
  wrong[2].values.assign(24, 0.f);
  EXPECT_THROW(opt.set_keras_state({kernel, bias}, wrong), std::invalid_argument);
  opt.set_keras_state({kernel, bias}, state);
}

TEST(Optimizers, GradientClipping) {
  Problem p;
  const double lr = 0.1;
  auto sgd = [&](std::vector<double>& w, const std::vector<double>& g, int) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= lr * g[i];
  };
  auto norm = [](const std::vector<double>& g) {
    double s = 0;
    for (double x : g) s += x * x;
    return std::sqrt(s);
  };
  expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = lr, .clipvalue = 0.5f})),
               p.reference(sgd, [](std::vector<double>& g) { for (double& x : g) x = std::clamp(x, -0.5, 0.5); }), "clipvalue");
  expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = lr, .clipnorm = 1.f})),
               p.reference(sgd, [&](std::vector<double>& g) {
                 const double n = norm(g);
                 for (double& x : g) x = x * 1.0 / std::max(n, 1.0);
               }),
               "clipnorm");
  // One variable: the global norm is its norm, so the two agree; a threshold above the norm changes nothing.
  expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = lr, .global_clipnorm = 1.f})),
               p.reference(sgd, [&](std::vector<double>& g) {
                 const double n = norm(g);
                 for (double& x : g) x = x * std::min(1.0 / n, 1.0);
               }),
               "global_clipnorm");
  expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = lr, .global_clipnorm = 1000.f})), p.reference(sgd), "large norm");
  EXPECT_THROW(SGD(SGDOptions{.clipnorm = 1.f, .clipvalue = 1.f}), std::invalid_argument);
}

TEST(Optimizers, GlobalClipnormScalesAllVariablesTogether) {
  clear_session();
  auto a = std::make_shared<Variable>("a", Shape{2}), b = std::make_shared<Variable>("b", Shape{1});
  const Tensor x = ops::placeholder({3}, DType::float32, "x");
  // loss = 3 a0 + 4 a1 + 12 b0: gradients (3, 4) and (12); global norm 13.
  const Tensor loss = ops::add(ops::sum(ops::multiply(ops::slice(x, {0}, {2}), ops::variable(a, x))),
                               ops::sum(ops::multiply(ops::slice(x, {2}, {1}), ops::variable(b, x))));
  Program prog({x}, {loss}, loss, std::make_shared<SGD>(SGDOptions{.learning_rate = 1.0, .global_clipnorm = 1.3f}));
  std::vector<float> xv{3, 4, 12};
  const TensorView feed{xv.data(), DType::float32, {3}};
  prog.run(Mode::training, std::span(&feed, 1));
  EXPECT_NEAR(a->to_vector()[0], -0.3f, 1e-6);
  EXPECT_NEAR(a->to_vector()[1], -0.4f, 1e-6);
  EXPECT_NEAR(b->to_vector()[0], -1.2f, 1e-6);
}

TEST(Schedules, KerasFormulas) {
  schedules::ExponentialDecay exp_decay(0.1, 10, 0.5);
  EXPECT_NEAR(exp_decay(0), 0.1, 1e-7);
  EXPECT_NEAR(exp_decay(5), 0.1 * std::pow(0.5, 0.5), 1e-7);
  schedules::ExponentialDecay stair(0.1, 10, 0.5, true);
  EXPECT_NEAR(stair(19), 0.05, 1e-7);
  schedules::PiecewiseConstantDecay piecewise({10, 20}, {1.0, 0.5, 0.1});
  EXPECT_FLOAT_EQ(piecewise(10), 1.0f);
  EXPECT_FLOAT_EQ(piecewise(11), 0.5f);
  EXPECT_FLOAT_EQ(piecewise(21), 0.1f);
  schedules::CosineDecay cosine(1.0, 100, 0.1);
  EXPECT_NEAR(cosine(50), 0.9 * 0.5 + 0.1, 1e-6);
  EXPECT_NEAR(cosine(500), 0.1, 1e-6);
  schedules::CosineDecay warm(0.0, 100, 0.0, 1.0, 10);
  EXPECT_NEAR(warm(5), 0.5, 1e-6);
  EXPECT_NEAR(warm(60), 0.5, 1e-6);
  schedules::InverseTimeDecay inverse(0.1, 10, 1.0);
  EXPECT_NEAR(inverse(10), 0.05, 1e-7);
  EXPECT_NEAR(schedules::InverseTimeDecay(0.1, 10, 1.0, true)(19), 0.05, 1e-7);
}

TEST(Schedules, DriveTheOptimizerStepByStep) {
  Problem p;
  schedules::ExponentialDecay decay(0.1, 2, 0.5);
  auto want = p.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= double(decay(step)) * g[i];
  });
  expect_close(p.run(std::make_shared<SGD>(SGDOptions{.learning_rate = decay})), want, "scheduled SGD");
}

TEST(Optimizers, ByNameAndConfig) {
  auto adam = get_optimizer("adam");
  EXPECT_EQ(adam->class_name(), "Adam");
  EXPECT_FLOAT_EQ(adam->learning_rate(), 0.001f);
  EXPECT_FLOAT_EQ(get_optimizer("sgd")->learning_rate(), 0.01f);
  auto rms = get_optimizer(Json{{"class_name", "RMSprop"}, {"config", {{"learning_rate", 0.5}, {"rho", 0.8}, {"centered", true}}}});
  EXPECT_FLOAT_EQ(rms->hyperparameters().rho, 0.8f);
  EXPECT_TRUE(rms->hyperparameters().centered);
  EXPECT_EQ(AdamW().get_config()["weight_decay"], Json(0.004f));
  auto scheduled = get_optimizer(Json{{"class_name", "SGD"}, {"config", {{"learning_rate", schedules::InverseTimeDecay(1.0, 1, 1.0).to_json()}}}});
  scheduled->set_iterations(3);
  EXPECT_FLOAT_EQ(scheduled->learning_rate(), 0.25f);
  EXPECT_THROW(get_optimizer("adamm"), std::invalid_argument);
  for (const char* name : {"ftrl", "lamb", "adafactor"}) {
    const auto opt = get_optimizer(name);
    const auto again = get_optimizer(Json{{"class_name", opt->class_name()}, {"config", opt->get_config()}});
    EXPECT_EQ(again->get_config(), opt->get_config()) << name;
  }
  auto ftrl = get_optimizer(Json{{"class_name", "Ftrl"}, {"config", {{"l1_regularization_strength", 0.5}, {"beta", 0.25}}}});
  EXPECT_FLOAT_EQ(ftrl->hyperparameters().l1, 0.5f);
  EXPECT_FLOAT_EQ(ftrl->hyperparameters().ftrl_beta, 0.25f);
  EXPECT_EQ(get_optimizer(Json{{"class_name", "Adafactor"}, {"config", {{"relative_step", false}}}})->get_config()["relative_step"], false);
  EXPECT_THROW(get_optimizer(Json{{"class_name", "Adam"}, {"config", {{"betta_1", 0.5}}}}), std::invalid_argument);
}

TEST(Optimizers, MovingAverageAndItsOverwrite) {
  // Keras's use_ema: after each step avg = m * avg + (1 - m) * w, with m = 0 on the first step; every
  // ema_overwrite_frequency-th step then puts avg into w.
  const Problem problem;
  auto opt = std::make_shared<SGD>(SGDOptions{.learning_rate = 0.1, .use_ema = true, .ema_momentum = 0.8f, .ema_overwrite_frequency = 4});
  const auto got = problem.run(opt);
  std::vector<double> average(12);
  const auto want = problem.reference([&](std::vector<double>& w, const std::vector<double>& g, int step) {
    const double m = step == 0 ? 0.0 : 0.8;
    for (std::size_t i = 0; i < w.size(); ++i) {
      w[i] -= 0.1 * g[i];
      average[i] = m * average[i] + (1 - m) * w[i];
    }
    if ((step + 1) % 4 == 0) w = average;
  });
  expect_close(got, want, "SGD use_ema");
  ASSERT_NE(opt->moving_average_of(0), nullptr);
  const auto stored = opt->moving_average_of(0)->to_vector();
  for (std::size_t i = 0; i < average.size(); ++i) EXPECT_NEAR(stored[i], average[i], 2e-5) << i;
  EXPECT_EQ(opt->state_size(), 2 + 12);  // iteration, learning rate and the averages
  opt->finalize_variable_values();
  EXPECT_EQ(opt->variables()[0]->to_vector(), stored);
}

TEST(Optimizers, MovingAverageConfigAsKeras) {
  auto adam = get_optimizer(Json{{"class_name", "Adam"},
                                 {"config", {{"use_ema", true}, {"ema_momentum", 0.9}, {"ema_overwrite_frequency", 5}}}});
  const Json c = adam->get_config();
  EXPECT_EQ(c["use_ema"], true);
  EXPECT_NEAR(c["ema_momentum"].get<double>(), 0.9, 1e-6);
  EXPECT_EQ(c["ema_overwrite_frequency"], 5);
  EXPECT_EQ(get_optimizer(Json{{"class_name", "Adam"}, {"config", c}})->get_config(), c);
  EXPECT_EQ(Adam().get_config()["use_ema"], false);
  EXPECT_TRUE(Adam().get_config()["ema_overwrite_frequency"].is_null());
  auto config_error = [](Json config, const std::string& part) {
    test::expect_error_containing([&] { (void)get_optimizer(Json{{"class_name", "SGD"}, {"config", config}}); }, part);
  };
  config_error({{"use_ema", true}, {"ema_momentum", 1.5}}, "ema_momentum must be in [0, 1], got 1.5");
  config_error({{"use_ema", true}, {"ema_overwrite_frequency", 0}}, "ema_overwrite_frequency must be an integer >= 1 or null, got 0");
  config_error({{"use_ema", true}, {"ema_overwrite_frequency", 2.5}}, "optimizer SGD: ema_overwrite_frequency must be an integer");
  config_error({{"use_ema", "yes"}}, "optimizer SGD: use_ema must be true or false, got \"yes\"");
  // As Keras, the EMA arguments are not checked while use_ema is off.
  EXPECT_NO_THROW((void)get_optimizer(Json{{"class_name", "SGD"}, {"config", {{"ema_momentum", 1.5}}}}));
}

TEST(Optimizers, SwapEMAWeightsPredictsWithTheAverages) {
  clear_session();
  set_random_seed(3);
  Sequential model({Input({4}), Dense(3, {.activation = "tanh"}), Dense(2)});
  model.compile(Adam(AdamOptions{.learning_rate = 0.05, .use_ema = true, .ema_momentum = 0.5f}), "mse");
  const Array x = Array::from_floats(test::random_vector(32, -1, 1, 5), {8, 4});
  const Array y = Array::from_floats(test::random_vector(16, -1, 1, 6), {8, 2});
  for (int i = 0; i < 5; ++i) (void)model.train_on_batch(x, y);  // no fit(): the weights stay the trained ones
  const auto trained = model.get_weights();
  const auto swap = std::make_shared<SwapEMAWeights>();
  const Array with_averages = model.predict(x, {.verbose = 0, .callbacks = {swap}});
  // The same prediction from the averages put in by hand; the trained weights are back after predict().
  const auto after = model.get_weights();
  for (std::size_t i = 0; i < trained.size(); ++i) EXPECT_EQ(after[i].to_floats(), trained[i].to_floats()) << i;
  const Array plain = model.predict(x, {.verbose = 0});
  EXPECT_NE(plain.to_floats(), with_averages.to_floats());
  model.optimizer()->finalize_variable_values();
  EXPECT_EQ(model.predict(x, {.verbose = 0}).to_floats(), with_averages.to_floats());

  Sequential plain_model({Input({4}), Dense(2)});
  plain_model.compile(Adam(), "mse");
  (void)plain_model.train_on_batch(x, y);
  test::expect_error_containing([&] { (void)plain_model.predict(x, {.verbose = 0, .callbacks = {swap}}); },
                                "SwapEMAWeights: the model's Adam optimizer needs use_ema=true");
}

}  // namespace
}  // namespace strata
