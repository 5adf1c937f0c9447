#include "layers/recurrent.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"

namespace strata {

namespace {

int gates(RecurrentKind kind) { return kind == RecurrentKind::lstm ? 4 : kind == RecurrentKind::gru ? 3 : 1; }

// Columns [k * units, (k + 1) * units) of a (batch, gates * units) tensor.
Tensor gate(const Tensor& t, int k, int units) { return ops::slice(t, {0, std::int64_t(k) * units}, {-1, units}); }

}  // namespace

Recurrent::Recurrent(RecurrentKind kind, int units, RecurrentOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), kind_(kind), units_(units), options_(std::move(options)),
      seed_(options_.seed) {
  if (units_ <= 0) throw std::invalid_argument(fmt::format("{}: units must be positive, got {}", name(), units_));
  check_activation(options_.activation);
  check_activation(options_.recurrent_activation);
  for (float rate : {options_.dropout, options_.recurrent_dropout})
    if (!(rate >= 0.f && rate < 1.f)) throw std::invalid_argument(fmt::format("{}: dropout rates must be in [0, 1), got {}", name(), rate));
  for (const Json* init : {&options_.kernel_initializer, &options_.recurrent_initializer, &options_.bias_initializer}) get_initializer(*init);
}

void Recurrent::build_multi(const std::vector<Shape>& shapes) {
  const Shape& input_shape = shapes[0];
  if (input_shape.rank() != 3 || input_shape[2] <= 0)
    throw std::invalid_argument(fmt::format("expects inputs (batch, steps, features) with known features, got {}", input_shape.to_string()));
  const std::int64_t g = gates(kind_), u = units_;
  if (shapes.size() > 1 && shapes.size() != std::size_t(1 + state_count()))
    throw std::invalid_argument(fmt::format("takes {} initial state(s), got {}", state_count(), shapes.size() - 1));
  for (std::size_t i = 1; i < shapes.size(); ++i)
    if (shapes[i].rank() != 2 || shapes[i][1] != u)
      throw std::invalid_argument(fmt::format("initial state {} must be (batch, {}), got {}", i - 1, u, shapes[i].to_string()));
  kernel_ = add_weight("kernel", {input_shape[2], g * u}, options_.kernel_initializer);
  recurrent_kernel_ = add_weight("recurrent_kernel", {u, g * u}, options_.recurrent_initializer);
  if (!options_.use_bias) return;
  const bool two_biases = kind_ == RecurrentKind::gru && options_.reset_after;
  bias_ = add_weight("bias", two_biases ? Shape{2, g * u} : Shape{g * u}, options_.bias_initializer);
  if (kind_ == RecurrentKind::lstm && options_.unit_forget_bias) {
    std::vector<float> values = bias_->to_vector();
    for (std::int64_t i = u; i < 2 * u; ++i) values[std::size_t(i)] = 1.f;
    bias_->assign(values);
  }
}

bool Recurrent::fused_cell() const {
  // The fused kernels compute Keras's defaults: sigmoid gates and tanh, GRU with the reset after.
  if (options_.activation != "tanh" || options_.recurrent_activation != "sigmoid") return false;
  return kind_ == RecurrentKind::lstm || (kind_ == RecurrentKind::gru && options_.reset_after);
}

Tensor Recurrent::step(const StepWeights& w, const Tensor& x_proj, Tensor& h, Tensor& c, const Tensor& h_in) {
  const int u = units_;
  const auto& act = options_.activation;
  const auto& ract = options_.recurrent_activation;
  const Tensor& rk = w.recurrent_kernel;
  switch (kind_) {
    case RecurrentKind::simple:
      h = apply_activation(act, ops::add(x_proj, ops::matmul(h_in, rk)));
      break;
    case RecurrentKind::lstm: {
      const Tensor z = ops::add(x_proj, ops::matmul(h_in, rk));
      if (fused_cell()) {
        const auto hc = ops::lstm_cell(z, c);
        h = hc[0];
        c = hc[1];
        break;
      }
      const Tensor i = apply_activation(ract, gate(z, 0, u)), f = apply_activation(ract, gate(z, 1, u));
      const Tensor candidate = apply_activation(act, gate(z, 2, u)), o = apply_activation(ract, gate(z, 3, u));
      c = ops::add(ops::multiply(f, c), ops::multiply(i, candidate));
      h = ops::multiply(o, apply_activation(act, c));
      break;
    }
    case RecurrentKind::gru: {
      Tensor hh;
      Tensor z, r;
      if (options_.reset_after) {
        Tensor inner = ops::matmul(h_in, rk);
        if (w.recurrent_bias.valid()) inner = ops::add(inner, w.recurrent_bias);
        if (fused_cell()) {
          h = ops::gru_cell(x_proj, inner, h);
          break;
        }
        z = apply_activation(ract, ops::add(gate(x_proj, 0, u), gate(inner, 0, u)));
        r = apply_activation(ract, ops::add(gate(x_proj, 1, u), gate(inner, 1, u)));
        hh = apply_activation(act, ops::add(gate(x_proj, 2, u), ops::multiply(r, gate(inner, 2, u))));
      } else {
        const Tensor zr = ops::matmul(h_in, w.kernel_zr);
        z = apply_activation(ract, ops::add(gate(x_proj, 0, u), gate(zr, 0, u)));
        r = apply_activation(ract, ops::add(gate(x_proj, 1, u), gate(zr, 1, u)));
        const Tensor rh = ops::matmul(ops::multiply(r, h_in), w.kernel_h);
        hh = apply_activation(act, ops::add(gate(x_proj, 2, u), rh));
      }
      h = ops::add(ops::multiply(z, h), ops::multiply(ops::subtract(1.f, z), hh));
      break;
    }
  }
  return h;
}

std::vector<Tensor> Recurrent::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  call_flags(call_arguments);
  const Tensor& x = inputs[0];
  const Shape s = x.shape();
  if (s.rank() != 3) throw std::invalid_argument(fmt::format("{} expects (batch, steps, features), got {}", class_name(), s.to_string()));
  const std::int64_t steps = s[1];
  // Unknown steps: traced again, unrolled, once the data gives their number.
  if (steps < 0) return deferred_call(inputs, call_arguments);
  if (steps == 0) throw std::invalid_argument(fmt::format("{} '{}' needs at least one step, got {}", class_name(), name(), s.to_string()));
  if (inputs.size() > 1 && inputs.size() != std::size_t(1 + state_count()))
    throw std::invalid_argument(fmt::format("{} takes {} initial state(s), got {}", class_name(), state_count(), inputs.size() - 1));
  const std::int64_t g = gates(kind_), u = units_;
  // Every step's input projection at once: one GEMM over (batch * steps, features).
  Tensor projected = options_.dropout > 0.f ? ops::dropout(x, options_.dropout, seed_.value(), {-1, 1, -1}) : x;
  Tensor proj = ops::matmul(projected, kernel_);
  if (bias_) {
    const Tensor b = ops::variable(bias_, x);
    proj = ops::add(proj, bias_->shape().rank() == 2 ? ops::reshape(ops::slice(b, {0, 0}, {1, -1}), {g * u}) : b);
  }
  StepWeights w;
  w.recurrent_kernel = ops::variable(recurrent_kernel_, x);
  if (kind_ == RecurrentKind::gru && options_.reset_after && bias_)
    w.recurrent_bias = ops::reshape(ops::slice(ops::variable(bias_, x), {1, 0}, {1, -1}), {g * u});
  if (kind_ == RecurrentKind::gru && !options_.reset_after) {
    w.kernel_zr = ops::slice(w.recurrent_kernel, {0, 0}, {-1, 2 * u});
    w.kernel_h = ops::slice(w.recurrent_kernel, {0, 2 * u}, {-1, u});
  }
  // Every step's slice of the projection, by one split (whose gradient is one concatenation).
  std::vector<Tensor> step_inputs = ops::split(proj, int(steps), 1);
  for (Tensor& t : step_inputs) t = ops::reshape(t, {-1, g * u});
  // Zero initial states, or the given ones. A fused cell reads whole rows, so its zeros take the batch
  // size; the composite path broadcasts a (1, units) zero against the batch.
  const Tensor zero = fused_cell() ? ops::full_like(ops::slice(step_inputs[0], {0, 0}, {-1, u}), 0.f) : ops::constant(0.f, x, Shape{1, u});
  const bool given_states = inputs.size() > 1;
  std::vector<Tensor> initial(inputs.begin() + 1, inputs.end());
  if (!given_states) initial.assign(std::size_t(state_count()), zero);
  const RecurrentLoop loop{.go_backwards = options_.go_backwards, .return_sequences = options_.return_sequences,
                           .zero_output_for_mask = options_.zero_output_for_mask, .outputs_in_input_order = outputs_in_input_order_};
  std::vector<Tensor> result = run_recurrent_loop(steps, std::move(initial), get_keras_mask(x), loop,
                                                  [&](std::int64_t t, std::int64_t i, const std::vector<Tensor>& states) {
    // The same seed on every step gives every step the same recurrent mask (the draw depends on the seed,
    // the shape and the training step only); the first step's state is zero and needs none.
    const Tensor& h = states[0];
    const Tensor h_in = options_.recurrent_dropout > 0.f && (i > 0 || given_states) ? ops::dropout(h, options_.recurrent_dropout, seed_.value() + 1) : h;
    Tensor h_new = h, c_new = kind_ == RecurrentKind::lstm ? states[1] : Tensor();
    step(w, step_inputs[std::size_t(t)], h_new, c_new, h_in);
    return kind_ == RecurrentKind::lstm ? std::vector<Tensor>{h_new, c_new} : std::vector<Tensor>{h_new};
  });
  if (!options_.return_state) result.resize(1);
  return result;
}

std::vector<Tensor> run_recurrent_loop(std::int64_t steps, std::vector<Tensor> states, const Tensor& mask, const RecurrentLoop& loop,
                                       const RecurrentStep& step) {
  // A masked step keeps the states and repeats the previous output, which is h (the initial state before
  // the first valid step), as Keras's RNN does; with zero_output_for_mask (set by Bidirectional for
  // sequences) it outputs zeros instead.
  std::vector<Tensor> outputs;
  Tensor last_output;
  for (std::int64_t i = 0; i < steps; ++i) {
    const std::int64_t t = loop.go_backwards ? steps - 1 - i : i;
    std::vector<Tensor> fresh = step(t, i, states);
    if (mask.valid()) {
      // (batch, 1, ...): the step's mask against states of any rank.
      std::vector<std::int64_t> mask_shape(std::size_t(fresh[0].shape().rank()), 1);
      mask_shape[0] = -1;
      const Tensor m_t = ops::reshape(ops::slice(mask, {0, t}, {-1, 1}), mask_shape);
      // keep + m * (new - keep): the new value where the step is valid, the kept one elsewhere.
      auto select = [&](const Tensor& value, const Tensor& keep) { return ops::add(keep, ops::multiply(m_t, ops::subtract(value, keep))); };
      last_output = loop.zero_output_for_mask ? ops::multiply(fresh[0], m_t) : select(fresh[0], states[0]);
      for (std::size_t k = 0; k < states.size(); ++k) states[k] = select(fresh[k], states[k]);
    } else {
      last_output = fresh[0];
      states = std::move(fresh);
    }
    if (loop.return_sequences) outputs.push_back(ops::expand_dims(last_output, 1));
  }
  if (loop.go_backwards && loop.outputs_in_input_order) std::reverse(outputs.begin(), outputs.end());
  std::vector<Tensor> result = {loop.return_sequences ? (outputs.size() == 1 ? outputs[0] : ops::concatenate(outputs, 1)) : last_output};
  result.insert(result.end(), states.begin(), states.end());
  return result;
}

std::vector<Tensor> recurrent_output_masks(const std::vector<Tensor>& inputs, std::size_t outputs, bool return_sequences) {
  std::vector<Tensor> masks(outputs);
  if (return_sequences && outputs > 0) masks[0] = get_keras_mask(inputs[0]);
  return masks;
}

Json recurrent_call_node(const std::vector<Json>& tensors) {
  Json kwargs = Json::object();
  if (tensors.size() > 1) kwargs["initial_state"] = Json(std::vector<Json>(tensors.begin() + 1, tensors.end()));
  return {{"args", Json::array({tensors[0]})}, {"kwargs", kwargs}};
}

void write_recurrent_flags(Json& c, const RecurrentLoop& loop, bool return_state) {
  c["return_sequences"] = loop.return_sequences;
  c["return_state"] = return_state;
  c["go_backwards"] = loop.go_backwards;
  c["stateful"] = false;
  c["unroll"] = false;
  c["zero_output_for_mask"] = loop.zero_output_for_mask;
}

std::vector<Tensor> Recurrent::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  return recurrent_output_masks(inputs, outputs.size(), options_.return_sequences);
}

Json Recurrent::call_node(const std::vector<Json>& tensors, const Json&) const { return recurrent_call_node(tensors); }

Json Recurrent::get_config() const {
  Json c = Layer::get_config();
  write_recurrent_flags(c, {.go_backwards = options_.go_backwards, .return_sequences = options_.return_sequences,
                            .zero_output_for_mask = options_.zero_output_for_mask},
                        options_.return_state);
  c["units"] = units_;
  c["activation"] = options_.activation;
  if (kind_ != RecurrentKind::simple) c["recurrent_activation"] = options_.recurrent_activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["recurrent_initializer"] = get_initializer(options_.recurrent_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  if (kind_ == RecurrentKind::lstm) c["unit_forget_bias"] = options_.unit_forget_bias;
  for (const char* k : {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                        "recurrent_constraint", "bias_constraint"})
    c[k] = nullptr;
  c["dropout"] = options_.dropout;
  c["recurrent_dropout"] = options_.recurrent_dropout;
  if (kind_ == RecurrentKind::gru) c["reset_after"] = options_.reset_after;
  if (kind_ != RecurrentKind::simple) c["seed"] = options_.seed ? Json(*options_.seed) : Json(nullptr);
  return c;
}

RecurrentOptions Recurrent::options_from_config(const Json& c, const std::string& cls, RecurrentKind kind, int& units) {
  config::check_keys(c, cls, {"units", "activation", "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                              "bias_initializer", "unit_forget_bias", "reset_after", "dropout", "recurrent_dropout", "return_sequences",
                              "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask", "seed", "time_major",
                              "implementation"});
  if (!c.contains("units") || !c.at("units").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'units' must be an integer", cls));
  units = c.at("units").get<int>();
  if (c.value("stateful", false))
    throw std::invalid_argument(fmt::format("{}: stateful=true is not supported by Strata's recurrent layers", cls));
  RecurrentOptions o;
  if (c.contains("activation") && c.at("activation").is_string()) o.activation = c.at("activation").get<std::string>();
  if (c.contains("recurrent_activation") && c.at("recurrent_activation").is_string())
    o.recurrent_activation = c.at("recurrent_activation").get<std::string>();
  o.use_bias = c.value("use_bias", true);
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.recurrent_initializer = config::initializer(c, "recurrent_initializer", "orthogonal");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.unit_forget_bias = c.value("unit_forget_bias", true);
  o.reset_after = c.value("reset_after", kind == RecurrentKind::gru);
  o.dropout = c.value("dropout", 0.f);
  o.recurrent_dropout = c.value("recurrent_dropout", 0.f);
  o.return_sequences = c.value("return_sequences", false);
  o.return_state = c.value("return_state", false);
  o.zero_output_for_mask = c.value("zero_output_for_mask", false);
  o.go_backwards = c.value("go_backwards", false);
  o.seed = config::seed(c);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return o;
}

namespace {

// Keras's cell classes and the layers they make.
const std::vector<std::pair<std::string, RecurrentKind>>& cell_classes() {
  static const std::vector<std::pair<std::string, RecurrentKind>> cells{
      {"SimpleRNNCell", RecurrentKind::simple}, {"LSTMCell", RecurrentKind::lstm}, {"GRUCell", RecurrentKind::gru}};
  return cells;
}

// The keys of an RNN's config that are the wrapper's own; the rest of a recurrent layer's keys are its cell's.
const std::vector<std::string> rnn_keys{"return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask"};

}  // namespace

RNN::RNN(RecurrentKind kind, int units, RecurrentOptions options) : Recurrent(kind, units, std::move(options), "rnn") {}

Json RNN::get_config() const {
  Json cell = Recurrent::get_config();
  Json c = Layer::get_config();
  for (const std::string& key : rnn_keys) {
    c[key] = cell.at(key);
    cell.erase(key);
  }
  cell.erase("activity_regularizer");
  const auto it = std::find_if(cell_classes().begin(), cell_classes().end(), [&](const auto& e) { return e.second == kind(); });
  cell["name"] = name() + "_cell";
  c["cell"] = {{"module", "keras.layers"}, {"class_name", it->first}, {"config", cell}, {"registered_name", nullptr}};
  return c;
}

LayerPtr RNN::from_config(const Json& c) {
  config::check_keys(c, "RNN", {"cell", "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask",
                                "time_major"});
  const Json cell = c.contains("cell") ? c.at("cell") : Json();
  const std::string cls = cell.is_object() ? cell.value("class_name", std::string()) : std::string();
  const auto it = std::find_if(cell_classes().begin(), cell_classes().end(), [&](const auto& e) { return e.first == cls; });
  if (it == cell_classes().end() || !cell.contains("config") || !cell.at("config").is_object())
    throw std::invalid_argument(fmt::format("RNN: cell {} is not one of Keras's SimpleRNNCell, LSTMCell and GRUCell (a list of cells, "
                                            "StackedRNNCells and custom cells are not supported)",
                                            cls.empty() ? cell.dump().substr(0, 80) : "'" + cls + "'"));
  // The layer's config as SimpleRNN, LSTM or GRU take it: the cell's keys, then the wrapper's.
  Json merged = cell.at("config");
  for (const auto& [key, value] : merged.items())
    if (!value.is_null() && (key.ends_with("_regularizer") || key.ends_with("_constraint")))
      throw std::invalid_argument(fmt::format("RNN: the cell's {} is not supported (give it to an LSTM, GRU or SimpleRNN layer instead)", key));
  for (const char* key : {"name", "trainable", "dtype"}) merged.erase(key);
  for (const auto& [key, value] : c.items())
    if (key != "cell") merged[key] = value;
  int units = 0;
  RecurrentOptions o = options_from_config(merged, "RNN", it->second, units);
  return std::make_shared<RNN>(it->second, units, o);
}

}  // namespace strata
