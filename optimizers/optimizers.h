// Keras's optimizers: SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Lion, Adadelta, Ftrl, Lamb, Adafactor, with Keras 3's defaults, update rules,
// config keys, gradient clipping, decoupled weight decay and learning-rate schedules.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "optimizers/optimizer.h"
#include "optimizers/schedules.h"

namespace strata {

// The arguments every Keras optimizer takes besides its own.
struct OptimizerCommon {
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  MovingAverageOptions moving_average;
};

// A base for the Keras optimizers: the learning rate or schedule and the common arguments.
class KerasOptimizer : public Optimizer {
 public:
  Json get_config() const override;

 protected:
  KerasOptimizer(OptimizerUpdate update, const LearningRate& lr, const OptimizerCommon& common,
                 float initial_accumulator_value = 0.1f);
  virtual Json own_config() const = 0;

 private:
  LearningRate lr_;
  OptimizerCommon common_;
};

struct SGDOptions {
  LearningRate learning_rate = 0.01;
  float momentum = 0.f;
  bool nesterov = false;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class SGD : public KerasOptimizer {
 public:
  explicit SGD(SGDOptions o = {});
  std::string class_name() const override { return "SGD"; }
 protected:
  Json own_config() const override;
};

struct AdamOptions {
  LearningRate learning_rate = 0.001;
  float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f;
  bool amsgrad = false;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Adam : public KerasOptimizer {
 public:
  explicit Adam(AdamOptions o = {});
  std::string class_name() const override { return "Adam"; }
 protected:
  Json own_config() const override;
};

struct AdamWOptions {
  LearningRate learning_rate = 0.001;
  float weight_decay = 0.004f;
  float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f;
  bool amsgrad = false;
  std::optional<float> clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class AdamW : public KerasOptimizer {
 public:
  explicit AdamW(AdamWOptions o = {});
  std::string class_name() const override { return "AdamW"; }
 protected:
  Json own_config() const override;
};

struct RMSpropOptions {
  LearningRate learning_rate = 0.001;
  float rho = 0.9f, momentum = 0.f, epsilon = 1e-7f;
  bool centered = false;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class RMSprop : public KerasOptimizer {
 public:
  explicit RMSprop(RMSpropOptions o = {});
  std::string class_name() const override { return "RMSprop"; }
 protected:
  Json own_config() const override;
};

struct AdagradOptions {
  LearningRate learning_rate = 0.001;
  float initial_accumulator_value = 0.1f, epsilon = 1e-7f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Adagrad : public KerasOptimizer {
 public:
  explicit Adagrad(AdagradOptions o = {});
  std::string class_name() const override { return "Adagrad"; }
 protected:
  Json own_config() const override;
 private:
  float initial_accumulator_;
};

struct NadamOptions {
  LearningRate learning_rate = 0.001;
  float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Nadam : public KerasOptimizer {
 public:
  explicit Nadam(NadamOptions o = {});
  std::string class_name() const override { return "Nadam"; }
 protected:
  Json own_config() const override;
};

struct AdamaxOptions {
  LearningRate learning_rate = 0.001;
  float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Adamax : public KerasOptimizer {
 public:
  explicit Adamax(AdamaxOptions o = {});
  std::string class_name() const override { return "Adamax"; }
 protected:
  Json own_config() const override;
};

// Lion: the sign of an interpolated momentum, so its learning rate is usually 3-10 times smaller than Adam's.
struct LionOptions {
  LearningRate learning_rate = 0.001;
  float beta_1 = 0.9f, beta_2 = 0.99f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Lion : public KerasOptimizer {
 public:
  explicit Lion(LionOptions o = {});
  std::string class_name() const override { return "Lion"; }
 protected:
  Json own_config() const override;
};

struct AdadeltaOptions {
  LearningRate learning_rate = 0.001;
  float rho = 0.95f, epsilon = 1e-7f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Adadelta : public KerasOptimizer {
 public:
  explicit Adadelta(AdadeltaOptions o = {});
  std::string class_name() const override { return "Adadelta"; }
 protected:
  Json own_config() const override;
};

// Ftrl (follow the regularized leader): per-coordinate rates from the accumulated squared gradient, with L1 and
// L2 regularization in closed form (an L1 strength above zero leaves weights exactly at zero).
struct FtrlOptions {
  LearningRate learning_rate = 0.001;
  float learning_rate_power = -0.5f, initial_accumulator_value = 0.1f;
  float l1_regularization_strength = 0.f, l2_regularization_strength = 0.f, l2_shrinkage_regularization_strength = 0.f;
  float beta = 0.f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Ftrl : public KerasOptimizer {
 public:
  explicit Ftrl(FtrlOptions o = {});
  std::string class_name() const override { return "Ftrl"; }
 protected:
  Json own_config() const override;
 private:
  float initial_accumulator_;
};

// Lamb: Adam's step scaled, variable by variable, by the ratio of the weights' norm to the step's norm.
struct LambOptions {
  LearningRate learning_rate = 0.001;
  float beta_1 = 0.9f, beta_2 = 0.999f, epsilon = 1e-7f;
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Lamb : public KerasOptimizer {
 public:
  explicit Lamb(LambOptions o = {});
  std::string class_name() const override { return "Lamb"; }
 protected:
  Json own_config() const override;
};

// Adafactor: the second moment of a weight of rank 2 or more kept factored, as the means over its last two axes;
// steps scaled by the weights' root mean square and clipped to a root mean square of clip_threshold.
struct AdafactorOptions {
  LearningRate learning_rate = 0.001;
  float beta_2_decay = -0.8f, epsilon_1 = 1e-30f, epsilon_2 = 1e-3f, clip_threshold = 1.f;
  bool relative_step = true;  // kept for Keras's config; Keras's step is min(lr, 1 / sqrt(t)) either way
  std::optional<float> weight_decay, clipnorm, clipvalue, global_clipnorm;
  bool use_ema = false;
  float ema_momentum = 0.99f;
  std::optional<std::int64_t> ema_overwrite_frequency;
};
class Adafactor : public KerasOptimizer {
 public:
  explicit Adafactor(AdafactorOptions o = {});
  std::string class_name() const override { return "Adafactor"; }
 protected:
  Json own_config() const override;
 private:
  bool relative_step_;
};

// An optimizer from a name ("adam", "SGD") with Keras's defaults, or from its Keras serialization
// {"class_name": "Adam", "config": {"learning_rate": 0.01, ...}}.
std::shared_ptr<Optimizer> get_optimizer(const Json& identifier);

}  // namespace strata
