#include "optimizers/optimizers.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "io/keras_object.h"

namespace strata {

namespace {

OptimizerUpdate with_decay(OptimizerUpdate u, const std::optional<float>& weight_decay) {
  u.weight_decay = weight_decay.value_or(0.f);
  return u;
}

// The arguments every optimizer's options carry under the same names.
template <class Options>
OptimizerCommon common_of(const Options& o) {
  return {o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm, {o.use_ema, o.ema_momentum, o.ema_overwrite_frequency}};
}

}  // namespace

KerasOptimizer::KerasOptimizer(OptimizerUpdate update, const LearningRate& lr, const OptimizerCommon& common,
                               float initial_accumulator_value)
    : Optimizer(with_decay(update, common.weight_decay), initial_accumulator_value), lr_(lr), common_(common) {
  if (lr.schedule()) {
    auto schedule = lr.schedule();
    set_schedule([schedule](std::int64_t step) { return (*schedule)(step); });
  } else {
    if (!(lr.value() >= 0.f)) throw std::invalid_argument(fmt::format("optimizer: learning_rate must be >= 0, got {}", lr.value()));
    set_learning_rate(lr.value());
  }
  set_clipping({common.clipnorm, common.clipvalue, common.global_clipnorm});
  set_moving_average(common.moving_average);
}

Json KerasOptimizer::get_config() const {
  auto opt = [](const std::optional<float>& v) { return v ? Json(*v) : Json(nullptr); };
  Json c = {{"name", [&] {
               std::string n = class_name();
               std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
               return n;
             }()},
            {"learning_rate", lr_.schedule() ? lr_.schedule()->to_json() : Json(lr_.value())},
            {"weight_decay", opt(common_.weight_decay)},
            {"clipnorm", opt(common_.clipnorm)},
            {"global_clipnorm", opt(common_.global_clipnorm)},
            {"clipvalue", opt(common_.clipvalue)},
            {"use_ema", moving_average().use_ema},
            {"ema_momentum", moving_average().ema_momentum},
            {"ema_overwrite_frequency", moving_average().ema_overwrite_frequency ? Json(*moving_average().ema_overwrite_frequency) : Json(nullptr)},
            {"loss_scale_factor", nullptr},
            {"gradient_accumulation_steps", nullptr}};
  c.update(own_config());
  return c;
}

SGD::SGD(SGDOptions o)
    : KerasOptimizer({.kind = OptimizerKind::sgd, .momentum = o.momentum, .nesterov = o.nesterov}, o.learning_rate,
                     common_of(o)) {
  if (!(o.momentum >= 0.f && o.momentum <= 1.f))
    throw std::invalid_argument(fmt::format("SGD: momentum must be in [0, 1], got {}", o.momentum));
}
Json SGD::own_config() const {
  return {{"momentum", hyperparameters().momentum}, {"nesterov", hyperparameters().nesterov}};
}

Adam::Adam(AdamOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adam, .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon, .amsgrad = o.amsgrad},
                     o.learning_rate, common_of(o)) {}
Json Adam::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}, {"epsilon", h.epsilon}, {"amsgrad", h.amsgrad}};
}

AdamW::AdamW(AdamWOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adam, .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon, .amsgrad = o.amsgrad},
                     o.learning_rate, common_of(o)) {}
Json AdamW::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}, {"epsilon", h.epsilon}, {"amsgrad", h.amsgrad}};
}

RMSprop::RMSprop(RMSpropOptions o)
    : KerasOptimizer({.kind = OptimizerKind::rmsprop, .momentum = o.momentum, .epsilon = o.epsilon, .centered = o.centered, .rho = o.rho},
                     o.learning_rate, common_of(o)) {}
Json RMSprop::own_config() const {
  const auto& h = hyperparameters();
  return {{"rho", h.rho}, {"momentum", h.momentum}, {"epsilon", h.epsilon}, {"centered", h.centered}};
}

Adagrad::Adagrad(AdagradOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adagrad, .epsilon = o.epsilon}, o.learning_rate,
                     common_of(o), o.initial_accumulator_value),
      initial_accumulator_(o.initial_accumulator_value) {}
Json Adagrad::own_config() const {
  return {{"initial_accumulator_value", initial_accumulator_}, {"epsilon", hyperparameters().epsilon}};
}

Nadam::Nadam(NadamOptions o)
    : KerasOptimizer({.kind = OptimizerKind::nadam, .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon},
                     o.learning_rate, common_of(o)) {}
Json Nadam::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}, {"epsilon", h.epsilon}};
}

Adamax::Adamax(AdamaxOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adamax, .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon},
                     o.learning_rate, common_of(o)) {}
Json Adamax::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}, {"epsilon", h.epsilon}};
}

Lion::Lion(LionOptions o)
    : KerasOptimizer({.kind = OptimizerKind::lion, .beta_1 = o.beta_1, .beta_2 = o.beta_2}, o.learning_rate, common_of(o)) {
  if (!(o.beta_1 > 0.f && o.beta_1 <= 1.f))
    throw std::invalid_argument(fmt::format("Lion: beta_1 must be in (0, 1], got {}", o.beta_1));
}
Json Lion::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}};
}

Adadelta::Adadelta(AdadeltaOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adadelta, .epsilon = o.epsilon, .rho = o.rho}, o.learning_rate, common_of(o)) {}
Json Adadelta::own_config() const {
  const auto& h = hyperparameters();
  return {{"rho", h.rho}, {"epsilon", h.epsilon}};
}

Ftrl::Ftrl(FtrlOptions o)
    : KerasOptimizer({.kind = OptimizerKind::ftrl, .lr_power = o.learning_rate_power, .l1 = o.l1_regularization_strength,
                      .l2 = o.l2_regularization_strength, .l2_shrinkage = o.l2_shrinkage_regularization_strength, .ftrl_beta = o.beta},
                     o.learning_rate, common_of(o), o.initial_accumulator_value),
      initial_accumulator_(o.initial_accumulator_value) {
  // Keras's checks, in its order.
  auto require = [](bool ok, const char* key, const char* what, float value) {
    if (!ok) throw std::invalid_argument(fmt::format("Ftrl: {} needs to be {}, got {}", key, what, value));
  };
  require(o.initial_accumulator_value >= 0.f, "initial_accumulator_value", "positive or zero", o.initial_accumulator_value);
  require(o.learning_rate_power <= 0.f, "learning_rate_power", "negative or zero", o.learning_rate_power);
  require(o.l1_regularization_strength >= 0.f, "l1_regularization_strength", "positive or zero", o.l1_regularization_strength);
  require(o.l2_regularization_strength >= 0.f, "l2_regularization_strength", "positive or zero", o.l2_regularization_strength);
  require(o.l2_shrinkage_regularization_strength >= 0.f, "l2_shrinkage_regularization_strength", "positive or zero",
          o.l2_shrinkage_regularization_strength);
}
Json Ftrl::own_config() const {
  const auto& h = hyperparameters();
  return {{"learning_rate_power", h.lr_power},
          {"initial_accumulator_value", initial_accumulator_},
          {"l1_regularization_strength", h.l1},
          {"l2_regularization_strength", h.l2},
          {"l2_shrinkage_regularization_strength", h.l2_shrinkage},
          {"beta", h.ftrl_beta}};
}

Lamb::Lamb(LambOptions o)
    : KerasOptimizer({.kind = OptimizerKind::lamb, .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon}, o.learning_rate,
                     common_of(o)) {}
Json Lamb::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_1", h.beta_1}, {"beta_2", h.beta_2}, {"epsilon", h.epsilon}};
}

Adafactor::Adafactor(AdafactorOptions o)
    : KerasOptimizer({.kind = OptimizerKind::adafactor, .epsilon_1 = o.epsilon_1, .epsilon_2 = o.epsilon_2,
                      .clip_threshold = o.clip_threshold, .beta_2_decay = o.beta_2_decay},
                     o.learning_rate, common_of(o)),
      relative_step_(o.relative_step) {
  if (!(o.clip_threshold > 0.f)) throw std::invalid_argument(fmt::format("Adafactor: clip_threshold must be positive, got {}", o.clip_threshold));
}
Json Adafactor::own_config() const {
  const auto& h = hyperparameters();
  return {{"beta_2_decay", h.beta_2_decay}, {"epsilon_1", h.epsilon_1}, {"epsilon_2", h.epsilon_2},
          {"clip_threshold", h.clip_threshold}, {"relative_step", relative_step_}};
}

std::shared_ptr<Optimizer> get_optimizer(const Json& identifier) {
  const io::KerasObject parsed = io::parse_keras_object(identifier, "optimizer");
  // tf.keras 2.11+ writes its optimizers into .h5 training configs as "Custom>Adam" and the like.
  const std::string& cls = parsed.name.rfind("Custom>", 0) == 0 ? parsed.name.substr(7) : parsed.name;
  const Json& c = parsed.config;
  std::string lower = cls;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });

  // Keras wraps the optimizer of a mixed-precision model in a LossScaleOptimizer. Strata computes in float32,
  // where scaling the loss changes nothing, so the wrapped optimizer is the one that trains.
  if (lower == "lossscaleoptimizer" || lower == "lossscaleoptimizerv3") {  // V3: tf.keras 2.11+
    for (const auto& [key, value] : c.items())
      if (key != "name" && key != "inner_optimizer" && key != "initial_scale" && key != "dynamic_growth_steps" && key != "dynamic")
        throw std::invalid_argument(fmt::format("optimizer {}: unknown config key '{}'", cls, key));
    if (!c.contains("inner_optimizer")) throw std::invalid_argument(fmt::format("optimizer {}: no inner_optimizer", cls));
    return get_optimizer(c.at("inner_optimizer"));
  }

  const std::vector<std::string> common = {"name", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "learning_rate",
                                           "use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                                           "gradient_accumulation_steps", "is_legacy_optimizer", "jit_compile", "decay", "lr"};
  auto check = [&](std::initializer_list<const char*> own) {
    for (const auto& [key, value] : c.items()) {
      if (std::find(common.begin(), common.end(), key) != common.end()) continue;
      bool ok = false;
      for (const char* k : own) ok = ok || key == k;
      if (!ok) throw std::invalid_argument(fmt::format("optimizer {}: unknown config key '{}'", cls, key));
    }
    if (c.contains("gradient_accumulation_steps") && !c.at("gradient_accumulation_steps").is_null())
      throw std::invalid_argument(fmt::format("optimizer {}: gradient_accumulation_steps is not supported", cls));
  };
  auto opt = [&](const char* key) -> std::optional<float> {
    if (c.contains(key) && c.at(key).is_number()) return c.at(key).get<float>();
    return std::nullopt;
  };
  auto num = [&](const char* key, float fallback) { return opt(key).value_or(fallback); };
  auto lr = [&](double fallback) -> LearningRate {
    const char* key = c.contains("learning_rate") ? "learning_rate" : "lr";  // standalone Keras 2 wrote "lr"
    const double decay = num("decay", 0.f);
    // Keras 2's optimizers (tf.keras before 2.11) divided the rate by 1 + decay * iterations; Nadam's
    // "decay" is instead its momentum schedule's, and Keras 3's Nadam keeps its own schedule.
    if (decay > 0 && lower != "nadam") {
      if (c.contains(key) && !c.at(key).is_null() && !c.at(key).is_number())
        throw std::invalid_argument(fmt::format("optimizer {}: decay = {} with a learning-rate schedule is not supported", cls, decay));
      const double rate = c.contains(key) && c.at(key).is_number() ? c.at(key).get<double>() : fallback;
      return schedules::InverseTimeDecay(rate, 1.0, decay);
    }
    if (!c.contains(key) || c.at(key).is_null()) return fallback;
    if (c.at(key).is_number()) return c.at(key).get<double>();
    return schedule_from_json(c.at(key));
  };
  // Keras's use_ema, ema_momentum and ema_overwrite_frequency, read the same way for every optimizer.
  MovingAverageOptions ema;
  if (c.contains("use_ema") && !c.at("use_ema").is_null()) {
    if (!c.at("use_ema").is_boolean())
      throw std::invalid_argument(fmt::format("optimizer {}: use_ema must be true or false, got {}", cls, c.at("use_ema").dump()));
    ema.use_ema = c.at("use_ema").get<bool>();
  }
  if (c.contains("ema_momentum") && !c.at("ema_momentum").is_null()) {
    if (!c.at("ema_momentum").is_number())
      throw std::invalid_argument(fmt::format("optimizer {}: ema_momentum must be a number, got {}", cls, c.at("ema_momentum").dump()));
    ema.ema_momentum = c.at("ema_momentum").get<float>();
  }
  if (c.contains("ema_overwrite_frequency") && !c.at("ema_overwrite_frequency").is_null()) {
    if (!c.at("ema_overwrite_frequency").is_number_integer())
      throw std::invalid_argument(fmt::format("optimizer {}: ema_overwrite_frequency must be an integer >= 1 or null, got {}", cls,
                                              c.at("ema_overwrite_frequency").dump()));
    ema.ema_overwrite_frequency = c.at("ema_overwrite_frequency").get<std::int64_t>();
  }
  try {
    check_moving_average(ema);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("optimizer {}: {}", cls, e.what()));
  }
  if (lower == "sgd") {
    check({"momentum", "nesterov"});
    return std::make_shared<SGD>(SGDOptions{lr(0.01), num("momentum", 0.f), c.value("nesterov", false), opt("weight_decay"),
                                            opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adam") {
    check({"beta_1", "beta_2", "epsilon", "amsgrad"});
    return std::make_shared<Adam>(AdamOptions{lr(0.001), num("beta_1", 0.9f), num("beta_2", 0.999f), num("epsilon", 1e-7f),
                                              c.value("amsgrad", false), opt("weight_decay"), opt("clipnorm"), opt("clipvalue"),
                                              opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adamw") {
    check({"beta_1", "beta_2", "epsilon", "amsgrad"});
    return std::make_shared<AdamW>(AdamWOptions{lr(0.001), num("weight_decay", 0.004f), num("beta_1", 0.9f), num("beta_2", 0.999f),
                                                num("epsilon", 1e-7f), c.value("amsgrad", false), opt("clipnorm"), opt("clipvalue"),
                                                opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "rmsprop") {
    check({"rho", "momentum", "epsilon", "centered"});
    return std::make_shared<RMSprop>(RMSpropOptions{lr(0.001), num("rho", 0.9f), num("momentum", 0.f), num("epsilon", 1e-7f),
                                                    c.value("centered", false), opt("weight_decay"), opt("clipnorm"),
                                                    opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adagrad") {
    check({"initial_accumulator_value", "epsilon"});
    return std::make_shared<Adagrad>(AdagradOptions{lr(0.001), num("initial_accumulator_value", 0.1f), num("epsilon", 1e-7f),
                                                    opt("weight_decay"), opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "nadam") {
    check({"beta_1", "beta_2", "epsilon"});
    return std::make_shared<Nadam>(NadamOptions{lr(0.001), num("beta_1", 0.9f), num("beta_2", 0.999f), num("epsilon", 1e-7f),
                                                opt("weight_decay"), opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                 ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adamax") {
    check({"beta_1", "beta_2", "epsilon"});
    return std::make_shared<Adamax>(AdamaxOptions{lr(0.001), num("beta_1", 0.9f), num("beta_2", 0.999f), num("epsilon", 1e-7f),
                                                  opt("weight_decay"), opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"),
                                                  ema.use_ema, ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "lion") {
    check({"beta_1", "beta_2"});
    return std::make_shared<Lion>(LionOptions{lr(0.001), num("beta_1", 0.9f), num("beta_2", 0.99f), opt("weight_decay"),
                                              opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                              ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adadelta") {
    check({"rho", "epsilon"});
    return std::make_shared<Adadelta>(AdadeltaOptions{lr(0.001), num("rho", 0.95f), num("epsilon", 1e-7f), opt("weight_decay"),
                                                      opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                                      ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "ftrl") {
    check({"learning_rate_power", "initial_accumulator_value", "l1_regularization_strength", "l2_regularization_strength",
           "l2_shrinkage_regularization_strength", "beta"});
    return std::make_shared<Ftrl>(FtrlOptions{lr(0.001), num("learning_rate_power", -0.5f), num("initial_accumulator_value", 0.1f),
                                              num("l1_regularization_strength", 0.f), num("l2_regularization_strength", 0.f),
                                              num("l2_shrinkage_regularization_strength", 0.f), num("beta", 0.f), opt("weight_decay"),
                                              opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"), ema.use_ema,
                                              ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "lamb") {
    check({"beta_1", "beta_2", "epsilon"});
    return std::make_shared<Lamb>(LambOptions{lr(0.001), num("beta_1", 0.9f), num("beta_2", 0.999f), num("epsilon", 1e-7f),
                                              opt("weight_decay"), opt("clipnorm"), opt("clipvalue"), opt("global_clipnorm"),
                                              ema.use_ema, ema.ema_momentum, ema.ema_overwrite_frequency});
  }
  if (lower == "adafactor") {
    check({"beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step"});
    return std::make_shared<Adafactor>(AdafactorOptions{lr(0.001), num("beta_2_decay", -0.8f), num("epsilon_1", 1e-30f),
                                                        num("epsilon_2", 1e-3f), num("clip_threshold", 1.f),
                                                        c.value("relative_step", true), opt("weight_decay"), opt("clipnorm"),
                                                        opt("clipvalue"), opt("global_clipnorm"), ema.use_ema, ema.ema_momentum,
                                                        ema.ema_overwrite_frequency});
  }
  throw std::invalid_argument(fmt::format(
      "unknown optimizer '{}' (known: SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Lion, Adadelta, Ftrl, Lamb, Adafactor)", cls));
}

}  // namespace strata
