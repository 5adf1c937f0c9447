#include "optimizers/optimizer.h"

#include "backends/kernel_geometry.h"
#include "graph/ops.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace strata {

Optimizer::Optimizer(OptimizerUpdate hyperparameters, float initial_accumulator_value)
    : hyper_(hyperparameters), initial_accumulator_(initial_accumulator_value) {}

void Optimizer::set_learning_rate(float lr) {
  hyper_.learning_rate = lr;
  schedule_ = nullptr;
}

nlohmann::json Optimizer::get_config() const {
  return {{"learning_rate", learning_rate()}, {"weight_decay", hyper_.weight_decay}};
}

void Optimizer::set_clipping(GradientClipping clipping) {
  const int set = int(clipping.clipnorm.has_value()) + int(clipping.clipvalue.has_value()) +
                  int(clipping.global_clipnorm.has_value());
  if (set > 1) throw std::invalid_argument("optimizer: only one of clipnorm, clipvalue and global_clipnorm can be set");
  for (auto v : {clipping.clipnorm, clipping.clipvalue, clipping.global_clipnorm})
    if (v && !(*v > 0.f)) throw std::invalid_argument(fmt::format("optimizer: clipping threshold must be positive, got {}", *v));
  clipping_ = clipping;
}

std::vector<Tensor> Optimizer::transform_gradients(std::vector<Tensor> grads) const {
  // The formulas of keras.src.optimizers.base_optimizer: g * c / max(norm, c) per variable; all gradients
  // times c * min(1 / global_norm, 1 / c); or an element-wise clip.
  if (clipping_.clipnorm) {
    const float c = *clipping_.clipnorm;
    for (Tensor& g : grads) g = ops::divide(ops::multiply(g, c), ops::maximum(ops::sqrt(ops::sum(ops::square(g))), c));
  } else if (clipping_.global_clipnorm && !grads.empty()) {
    const float c = *clipping_.global_clipnorm;
    Tensor total = ops::sum(ops::square(grads[0]));
    for (std::size_t i = 1; i < grads.size(); ++i) total = ops::add(total, ops::sum(ops::square(grads[i])));
    const Tensor scale = ops::multiply(ops::minimum(ops::rsqrt(total), 1.f / c), c);
    for (Tensor& g : grads) g = ops::multiply(g, scale);
  } else if (clipping_.clipvalue) {
    const float c = *clipping_.clipvalue;
    for (Tensor& g : grads) g = ops::clip(g, -c, c);
  }
  return grads;
}

float Optimizer::learning_rate() const { return schedule_ ? schedule_(iterations_) : hyper_.learning_rate; }

void check_moving_average(const MovingAverageOptions& options) {
  if (!options.use_ema) return;
  if (!(options.ema_momentum >= 0.f && options.ema_momentum <= 1.f))
    throw std::invalid_argument(fmt::format("ema_momentum must be in [0, 1], got {}", options.ema_momentum));
  if (options.ema_overwrite_frequency && *options.ema_overwrite_frequency < 1)
    throw std::invalid_argument(
        fmt::format("ema_overwrite_frequency must be an integer >= 1 or null, got {}", *options.ema_overwrite_frequency));
}

void Optimizer::set_moving_average(MovingAverageOptions options) {
  if (!variables_.empty()) throw std::logic_error("optimizer: use_ema must be set before the optimizer is built");
  try {
    check_moving_average(options);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("optimizer: {}", e.what()));
  }
  ema_ = options;
}

namespace {

// The update rule's slots, in OptimizerUpdate's order.
std::vector<std::string> rule_slot_names(const OptimizerUpdate& u) {
  switch (u.kind) {
    case OptimizerKind::sgd: return u.momentum > 0.f ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
    case OptimizerKind::adam:
      return u.amsgrad ? std::vector<std::string>{"momentum", "velocity", "velocity_hat"}
                       : std::vector<std::string>{"momentum", "velocity"};
    case OptimizerKind::rmsprop: {
      std::vector<std::string> names{"velocity"};
      if (u.momentum > 0.f) names.emplace_back("momentum");
      if (u.centered) names.emplace_back("average_gradient");
      return names;
    }
    case OptimizerKind::adagrad: return {"accumulator"};
    case OptimizerKind::nadam: return {"momentum", "velocity"};
    case OptimizerKind::adamax: return {"momentum", "norm"};
    case OptimizerKind::lion: return {"momentum"};
    case OptimizerKind::adadelta: return {"accumulated_grad", "accumulated_delta_var"};
    case OptimizerKind::ftrl: return {"accumulator", "linear"};
    case OptimizerKind::lamb: return {"momentum", "velocity"};
    case OptimizerKind::adafactor: return {"r", "c", "velocity"};
  }
  return {};
}

// Slot `slot` of a variable of shape `variable`: the variable's own shape, but for Adafactor's factored
// second moment.
Shape slot_shape(const OptimizerUpdate& u, std::size_t slot, const Shape& variable) {
  if (u.kind == OptimizerKind::adafactor && slot == 0) return adafactor_row_shape(variable);
  if (u.kind == OptimizerKind::adafactor && slot == 1) return adafactor_column_shape(variable);
  return variable;
}

// Every slot of a variable: the rule's, then the moving average with use_ema (the backend's order).
std::vector<std::string> slot_names(const OptimizerUpdate& u, bool ema) {
  std::vector<std::string> names = rule_slot_names(u);
  if (ema) names.emplace_back("average");
  return names;
}

}  // namespace

VariablePtr Optimizer::moving_average_of(std::size_t i) const {
  return ema_.use_ema && i < slots_.size() ? slots_[i].back() : nullptr;
}

void Optimizer::build(const std::vector<VariablePtr>& variables, Backend& backend) {
  if (!variables_.empty()) {
    if (variables != variables_)
      throw std::invalid_argument("optimizer: already built for a different set of variables");
    for (auto& s : slots_)
      for (auto& v : s) v->move_to(backend);
  } else {
    variables_ = variables;
    for (const VariablePtr& var : variables) {
      std::vector<VariablePtr> slots;
      const auto names = slot_names(hyper_, ema_.use_ema);
      for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        auto slot = std::make_shared<Variable>(var->name() + "_" + name, slot_shape(hyper_, i, var->shape()), var->dtype(), false, &backend);
        if (name == "accumulator") backend.fill(slot->view(), initial_accumulator_);
        slots.push_back(std::move(slot));
      }
      for (const auto& [target, values] : pending_slots_)
        if (target == var.get())
          for (std::size_t i = 0; i < slots.size() && i < values.size(); ++i) slots[i]->assign(values[i]);
      slots_.push_back(std::move(slots));
    }
  }
  slot_views_.clear();
  for (auto& s : slots_) {
    std::vector<TensorView> views;
    for (auto& v : s) views.push_back(v->view(backend));
    slot_views_.push_back(std::move(views));
  }
}

namespace {

// Keras's build() calls of the update rule, each a list of our slot indices created interleaved per variable.
std::vector<std::vector<std::size_t>> keras_rule_slot_groups(const OptimizerUpdate& u) {
  switch (u.kind) {
    case OptimizerKind::sgd: return u.momentum > 0.f ? std::vector<std::vector<std::size_t>>{{0}} : std::vector<std::vector<std::size_t>>{};
    case OptimizerKind::adam: return u.amsgrad ? std::vector<std::vector<std::size_t>>{{0, 1}, {2}} : std::vector<std::vector<std::size_t>>{{0, 1}};
    case OptimizerKind::rmsprop: {
      std::vector<std::vector<std::size_t>> groups{{0}};
      std::size_t next = 1;
      if (u.momentum > 0.f) groups.push_back({next++});
      if (u.centered) groups.push_back({next++});
      return groups;
    }
    case OptimizerKind::adagrad: return {{0}};
    case OptimizerKind::nadam: return {{0, 1}};
    case OptimizerKind::adamax: return {{0, 1}};
    case OptimizerKind::lion: return {{0}};
    case OptimizerKind::adadelta: return {{0, 1}};
    case OptimizerKind::ftrl: return {{0, 1}};
    case OptimizerKind::lamb: return {{0, 1}};
    case OptimizerKind::adafactor: return {{0, 1, 2}};  // created together, variable by variable
  }
  return {};
}

// The base class's build() creates the moving averages before the rule's slots.
std::vector<std::vector<std::size_t>> keras_slot_groups(const OptimizerUpdate& u, bool ema) {
  std::vector<std::vector<std::size_t>> groups = keras_rule_slot_groups(u);
  if (ema) groups.insert(groups.begin(), {rule_slot_names(u).size()});
  return groups;
}

std::string keras_weight_path(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

}  // namespace

std::vector<Optimizer::StateValue> Optimizer::keras_state(const std::vector<VariablePtr>& model_weights) const {
  std::vector<StateValue> state;
  // A state restored from a file but not built yet (no step since) is saved as it was read.
  if (variables_.empty() && pending_slots_.empty()) return state;
  state.push_back({"iteration", Shape(), {float(iterations_)}});
  if (!schedule_) state.push_back({"learning_rate", Shape(), {learning_rate()}});
  const auto names = slot_names(hyper_, ema_.use_ema);
  for (const auto& group : keras_slot_groups(hyper_, ema_.use_ema))
    for (const VariablePtr& w : model_weights) {
      const std::string path = keras_weight_path(w->name()) + "_";
      // Unique names (Keras names Adafactor's factored moments after the weight alone, "kernel", which an
      // .h5 file cannot hold twice).
      auto name_of = [&](std::size_t i) { return path + names[i]; };
      if (variables_.empty()) {
        const auto pending = std::find_if(pending_slots_.begin(), pending_slots_.end(), [&](const auto& p) { return p.first == w.get(); });
        if (pending == pending_slots_.end()) continue;
        for (std::size_t i : group) state.push_back({name_of(i), slot_shape(hyper_, i, w->shape()), pending->second.at(i)});
        continue;
      }
      const auto it = std::find(variables_.begin(), variables_.end(), w);
      if (it == variables_.end()) continue;  // not trained (frozen): Keras builds no slots for it either
      const auto& slots = slots_[std::size_t(it - variables_.begin())];
      for (std::size_t i : group) state.push_back({name_of(i), slots[i]->shape(), slots[i]->to_vector()});
    }
  if (hyper_.kind == OptimizerKind::nadam) state.push_back({"u_product", Shape(), {float(nadam_u_product_)}});
  return state;
}

void Optimizer::set_keras_state(const std::vector<VariablePtr>& model_weights, const std::vector<StateValue>& state) {
  const auto names = slot_names(hyper_, ema_.use_ema);
  const auto groups = keras_slot_groups(hyper_, ema_.use_ema);
  std::size_t slot_values = 0;
  for (const auto& group : groups) slot_values += group.size() * model_weights.size();
  const std::size_t tail = hyper_.kind == OptimizerKind::nadam ? 1 : 0;
  // Keras lists the learning rate among its variables only when it is a number, not a schedule; tf.keras
  // 2.11+ never does. A state saved before the first step holds the head alone.
  auto fits = [&](bool with_rate) {
    const std::size_t head = with_rate ? 2 : 1;
    return state.size() == head || state.size() == head + slot_values + tail;
  };
  bool with_rate = !schedule_;
  if (!fits(with_rate)) with_rate = !with_rate;
  if (!fits(with_rate))
    throw std::invalid_argument(fmt::format("optimizer state: {} values, but {} over {} weights keeps {} (the iteration count, {}{} slot values{})",
                                            state.size(), class_name(), model_weights.size(), 1 + int(!schedule_) + slot_values + tail,
                                            schedule_ ? "" : "the learning rate, ", slot_values, tail ? ", the momentum product" : ""));
  std::size_t at = 0;
  const float iterations = state[at++].values.at(0);
  std::optional<float> lr;
  if (with_rate) lr = state[at++].values.at(0);
  if (at == state.size()) {  // saved before its first step: no slots yet (Keras writes this too)
    iterations_ = std::int64_t(iterations);
    if (lr && !schedule_) hyper_.learning_rate = *lr;
    return;
  }
  std::vector<std::vector<std::vector<float>>> per_weight(model_weights.size(), std::vector<std::vector<float>>(names.size()));
  for (const auto& group : groups)
    for (std::size_t w = 0; w < model_weights.size(); ++w)
      for (std::size_t i : group) {
        const StateValue& v = state[at++];
        const Shape want = slot_shape(hyper_, i, model_weights[w]->shape());
        if (v.shape != want)
          throw std::invalid_argument(fmt::format("optimizer state: value {} ('{}') has shape {} but {}'s {} for weight '{}' has {}", at - 1,
                                                  v.name, v.shape.to_string(), class_name(), names[i], model_weights[w]->name(),
                                                  want.to_string()));
        per_weight[w][i] = v.values;
      }
  const double u_product = tail ? state[at++].values.at(0) : 1.0;
  commit_state(model_weights, std::int64_t(iterations), lr, u_product, std::move(per_weight));
}

void Optimizer::commit_state(const std::vector<VariablePtr>& model_weights, std::int64_t iterations, std::optional<float> learning_rate,
                             double u_product, std::vector<std::vector<std::vector<float>>> per_weight) {
  iterations_ = iterations;
  if (learning_rate && !schedule_) hyper_.learning_rate = *learning_rate;
  nadam_u_product_ = u_product;
  pending_slots_.clear();
  for (std::size_t w = 0; w < model_weights.size(); ++w) {
    const auto it = std::find(variables_.begin(), variables_.end(), model_weights[w]);
    if (it != variables_.end()) {
      auto& slots = slots_[std::size_t(it - variables_.begin())];
      for (std::size_t i = 0; i < slots.size(); ++i) slots[i]->assign(per_weight[w][i]);
    } else {
      pending_slots_.emplace_back(model_weights[w].get(), std::move(per_weight[w]));
    }
  }
}

namespace {

// The update rule's slots as tf.keras 2's OptimizerV2 classes named them, in OptimizerUpdate's order.
std::vector<std::string> keras2_slot_names(const OptimizerUpdate& u) {
  switch (u.kind) {
    case OptimizerKind::sgd: return u.momentum > 0.f ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
    case OptimizerKind::adam: return u.amsgrad ? std::vector<std::string>{"m", "v", "vhat"} : std::vector<std::string>{"m", "v"};
    case OptimizerKind::rmsprop: {
      std::vector<std::string> names{"rms"};
      if (u.momentum > 0.f) names.emplace_back("momentum");
      if (u.centered) names.emplace_back("mg");
      return names;
    }
    case OptimizerKind::adagrad: return {"accumulator"};
    case OptimizerKind::nadam: return {"m", "v"};
    case OptimizerKind::adamax: return {"m", "v"};
    case OptimizerKind::lion: return {};  // not among Keras 2's optimizers
    case OptimizerKind::adadelta: return {"accum_grad", "accum_var"};
    case OptimizerKind::ftrl: return {"accumulator", "linear"};
    case OptimizerKind::lamb:
    case OptimizerKind::adafactor: return {};  // not among Keras 2's optimizers
  }
  return {};
}

}  // namespace

void Optimizer::set_keras2_state(const std::vector<VariablePtr>& model_weights, const std::vector<StateValue>& state) {
  const std::vector<std::string> kinds = keras2_slot_names(hyper_);
  std::vector<std::vector<const StateValue*>> by_kind(kinds.size());
  std::optional<float> iterations;
  double u_product = 1.0;
  for (std::size_t at = 0; at < state.size(); ++at) {
    const StateValue& v = state[at];
    // "Adam/dense/kernel/m:0": the optimizer's name, the weight's path, the slot, the TF output index.
    std::string name = v.name.substr(0, v.name.rfind(':'));
    const auto first = name.find('/'), last = name.rfind('/');
    const std::string kind = last == std::string::npos ? name : name.substr(last + 1);
    if (first == last) {  // a scalar of the optimizer itself
      if (kind == "iter" && v.values.size() == 1) {
        iterations = v.values[0];
        continue;
      }
      if (kind == "momentum_cache" && hyper_.kind == OptimizerKind::nadam && v.values.size() == 1) {
        u_product = v.values[0];
        continue;
      }
    } else if (const auto it = std::find(kinds.begin(), kinds.end(), kind); it != kinds.end()) {
      by_kind[std::size_t(it - kinds.begin())].push_back(&v);
      continue;
    }
    throw std::invalid_argument(fmt::format("optimizer state: value {} ('{}') is not a slot of a tf.keras 2 {} configured as this one (slots: {})",
                                            at, v.name, class_name(), kinds.empty() ? "none" : fmt::format("{}", fmt::join(kinds, ", "))));
  }
  if (!iterations) throw std::invalid_argument(fmt::format("optimizer state: no iteration count (a value named '<optimizer>/iter:0')"));
  const std::size_t slots_per_weight = slot_names(hyper_, ema_.use_ema).size();
  std::vector<std::vector<std::vector<float>>> per_weight(model_weights.size(), std::vector<std::vector<float>>(slots_per_weight));
  const bool built = std::any_of(by_kind.begin(), by_kind.end(), [](const auto& values) { return !values.empty(); });
  for (std::size_t k = 0; k < kinds.size() && built; ++k) {
    if (by_kind[k].size() != model_weights.size())
      throw std::invalid_argument(fmt::format("optimizer state: {} values of slot '{}', but the model has {} trainable weights",
                                              by_kind[k].size(), kinds[k], model_weights.size()));
    for (std::size_t w = 0; w < model_weights.size(); ++w) {
      const StateValue& v = *by_kind[k][w];
      if (v.shape != model_weights[w]->shape())
        throw std::invalid_argument(fmt::format("optimizer state: '{}' has shape {} but weight '{}' has {}", v.name, v.shape.to_string(),
                                                model_weights[w]->name(), model_weights[w]->shape().to_string()));
      per_weight[w][k] = v.values;
    }
  }
  // Keras 2 kept no moving averages: with use_ema they start from the weights.
  if (ema_.use_ema)
    for (std::size_t w = 0; w < model_weights.size(); ++w) per_weight[w].back() = model_weights[w]->to_vector();
  if (!built && !kinds.empty()) {  // saved before its first step: no slots yet
    iterations_ = std::int64_t(*iterations);
    return;
  }
  commit_state(model_weights, std::int64_t(*iterations), std::nullopt, u_product, std::move(per_weight));
}

std::int64_t Optimizer::state_size() const {
  if (variables_.empty() && pending_slots_.empty()) return 0;
  std::int64_t n = 1 + (schedule_ ? 0 : 1) + (hyper_.kind == OptimizerKind::nadam ? 1 : 0);
  for (const auto& slots : slots_)
    for (const auto& slot : slots) n += slot->shape().numel();
  if (variables_.empty())  // restored from a file, built at the first step
    for (const auto& [variable, slots] : pending_slots_)
      for (const auto& values : slots) n += std::int64_t(values.size());
  return n;
}

void Optimizer::apply(Backend& backend, std::span<const TensorView> params, std::span<const TensorView> grads) {
  if (params.size() != slot_views_.size() || grads.size() != params.size())
    throw std::invalid_argument(fmt::format("optimizer: built for {} variables, given {} parameters and {} gradients",
                                            slot_views_.size(), params.size(), grads.size()));
  OptimizerUpdate u = hyper_;
  u.learning_rate = learning_rate();
  u.ema = ema_.use_ema;
  u.ema_momentum = iterations_ == 0 ? 0.f : ema_.ema_momentum;
  const double t = double(iterations_ + 1);
  u.adam_alpha = u.kind == OptimizerKind::adamax
                     ? float(u.learning_rate / (1.0 - std::pow(double(u.beta_1), t)))
                     : float(u.learning_rate * std::sqrt(1.0 - std::pow(double(u.beta_2), t)) / (1.0 - std::pow(double(u.beta_1), t)));
  u.correction_1 = float(1.0 - std::pow(double(u.beta_1), t));
  u.correction_2 = float(1.0 - std::pow(double(u.beta_2), t));
  if (u.kind == OptimizerKind::adafactor) {
    // Keras's relative step min(lr, 1 / sqrt(t)) and second-moment decay 1 - t^beta_2_decay.
    u.relative_step = float(std::min(double(u.learning_rate), 1.0 / std::sqrt(t)));
    u.decay_2 = float(1.0 - std::pow(t, double(hyper_.beta_2_decay)));
  }
  if (u.kind == OptimizerKind::nadam) {
    // Keras 3's Nadam momentum schedule (0.96^t; Keras 2 used 0.96^(0.004 t)), advanced once per step.
    const double decay = 0.96, b1 = u.beta_1;
    const double u_t = b1 * (1.0 - 0.5 * std::pow(decay, t));
    const double u_t_1 = b1 * (1.0 - 0.5 * std::pow(decay, t + 1.0));
    const double u_product_t = nadam_u_product_ * u_t;
    const double u_product_t_1 = u_product_t * u_t_1;
    u.nadam_m_coef = float(u_t_1 / (1.0 - u_product_t_1));
    u.nadam_g_coef = float((1.0 - u_t) / (1.0 - u_product_t));
    u.nadam_v_coef = float(1.0 / (1.0 - std::pow(double(u.beta_2), t)));
    nadam_u_product_ = u_product_t;
  }
  for (std::size_t i = 0; i < params.size(); ++i) backend.optimizer_update(u, params[i], grads[i], slot_views_[i]);
  // Keras counts this step's overwrite from the iteration count before the step.
  if (ema_.use_ema && ema_.ema_overwrite_frequency && (iterations_ + 1) % *ema_.ema_overwrite_frequency == 0)
    for (std::size_t i = 0; i < params.size(); ++i) backend.copy(params[i].data, slot_views_[i].back().data, params[i].bytes());
  ++iterations_;
}

void Optimizer::finalize_variable_values() {
  if (!ema_.use_ema) return;
  for (std::size_t i = 0; i < variables_.size(); ++i) variables_[i]->assign(slots_[i].back()->to_vector());
}

void Optimizer::copy_variables_to_moving_averages() {
  if (!ema_.use_ema) return;
  for (std::size_t i = 0; i < variables_.size(); ++i) slots_[i].back()->assign(variables_[i]->to_vector());
}

void Optimizer::swap_moving_averages() {
  if (!ema_.use_ema) return;
  for (std::size_t i = 0; i < variables_.size(); ++i) {
    std::vector<float> value = variables_[i]->to_vector();
    variables_[i]->assign(slots_[i].back()->to_vector());
    slots_[i].back()->assign(value);
  }
}

}  // namespace strata
