#include "layers/conv_lstm.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"
#include "layers/activations.h"
#include "layers/initializers.h"
#include "layers/recurrent.h"

namespace strata {

namespace {

constexpr int kGates = 4;

// The last axis's [start, start + size) of a tensor of any rank.
Tensor last_axis_slice(const Tensor& t, std::int64_t start, std::int64_t size) {
  const int rank = t.shape().rank();
  std::vector<std::int64_t> begin(std::size_t(rank), 0), sizes(std::size_t(rank), -1);
  begin.back() = start;
  sizes.back() = size;
  return ops::slice(t, begin, sizes);
}

}  // namespace

ConvLSTM::ConvLSTM(int rank, int filters, const IntTuple& kernel_size, ConvLSTMOptions options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), rank_(rank), filters_(filters), kernel_size_(kernel_size.expand(rank, "kernel_size")),
      strides_(options.strides.expand(rank, "strides")), dilation_(options.dilation_rate.expand(rank, "dilation_rate")),
      options_(std::move(options)), seed_(options_.seed) {
  if (filters_ <= 0) throw std::invalid_argument(fmt::format("{}: filters must be positive, got {}", name(), filters_));
  check_conv_window(name(), kernel_size_, strides_, dilation_, options_.padding);
  check_activation(options_.activation);
  check_activation(options_.recurrent_activation);
  for (float rate : {options_.dropout, options_.recurrent_dropout})
    if (!(rate >= 0.f && rate < 1.f)) throw std::invalid_argument(fmt::format("{}: dropout rates must be in [0, 1), got {}", name(), rate));
  for (const Json* init : {&options_.kernel_initializer, &options_.recurrent_initializer, &options_.bias_initializer}) get_initializer(*init);
}

void ConvLSTM::build_multi(const std::vector<Shape>& shapes) {
  const Shape& s = shapes[0];
  bool known = s.rank() == rank_ + 3;
  for (int d = 2; known && d < s.rank(); ++d) known = s[d] > 0;
  if (!known)
    throw std::invalid_argument(fmt::format("expects inputs of rank {} (batch, steps, {}channels) with known sizes after the steps, got {}",
                                            rank_ + 3, rank_ == 3 ? "depth, height, width, " : rank_ == 2 ? "height, width, " : "width, ",
                                            s.to_string()));
  if (shapes.size() != 1 && shapes.size() != 3)
    throw std::invalid_argument(fmt::format("takes 2 initial states (h, c), got {}", shapes.size() - 1));
  const std::int64_t f = filters_;
  Shape kernel_shape, recurrent_shape;
  for (int k : kernel_size_) {
    kernel_shape.push_back(k);
    recurrent_shape.push_back(k);
  }
  kernel_shape.push_back(s[s.rank() - 1]);
  kernel_shape.push_back(kGates * f);
  recurrent_shape.push_back(f);
  recurrent_shape.push_back(kGates * f);
  kernel_ = add_weight("kernel", kernel_shape, options_.kernel_initializer);
  recurrent_kernel_ = add_weight("recurrent_kernel", recurrent_shape, options_.recurrent_initializer);
  if (!options_.use_bias) return;
  bias_ = add_weight("bias", {kGates * f}, options_.bias_initializer);
  if (options_.unit_forget_bias) {
    std::vector<float> values = bias_->to_vector();
    for (std::int64_t i = f; i < 2 * f; ++i) values[std::size_t(i)] = 1.f;
    bias_->assign(values);
  }
}

std::array<Tensor, 2> ConvLSTM::cell(const Tensor& z, const Tensor& c) const {
  const std::int64_t f = filters_;
  if (options_.activation == "tanh" && options_.recurrent_activation == "sigmoid") {
    // Keras's default activations: the fused LSTM cell over every position's gates at once.
    std::vector<std::int64_t> state_shape(std::size_t(rank_ + 2), -1);
    const Shape zs = z.shape();
    for (int d = 1; d <= rank_; ++d) state_shape[std::size_t(d)] = zs[d];
    state_shape.back() = f;
    const auto hc = ops::lstm_cell(ops::reshape(z, {-1, kGates * f}), ops::reshape(c, {-1, f}));
    return {ops::reshape(hc[0], state_shape), ops::reshape(hc[1], state_shape)};
  }
  const auto& act = options_.activation;
  const auto& ract = options_.recurrent_activation;
  const Tensor i = apply_activation(ract, last_axis_slice(z, 0, f)), forget = apply_activation(ract, last_axis_slice(z, f, f));
  const Tensor candidate = apply_activation(act, last_axis_slice(z, 2 * f, f)), o = apply_activation(ract, last_axis_slice(z, 3 * f, f));
  const Tensor c_new = ops::add(ops::multiply(forget, c), ops::multiply(i, candidate));
  return {ops::multiply(o, apply_activation(act, c_new)), c_new};
}

std::vector<Tensor> ConvLSTM::call_all(const std::vector<Tensor>& inputs, const Json& call_arguments) {
  call_flags(call_arguments);
  const Tensor& x = inputs[0];
  const Shape s = x.shape();
  if (s.rank() != rank_ + 3) throw std::invalid_argument(fmt::format("{} expects inputs of rank {}, got {}", class_name(), rank_ + 3, s.to_string()));
  const std::int64_t steps = s[1], f = filters_;
  // Unknown steps: traced again, unrolled, once the data gives their number.
  if (steps < 0) return deferred_call(inputs, call_arguments);
  if (steps == 0) throw std::invalid_argument(fmt::format("{} '{}' needs at least one step, got {}", class_name(), name(), s.to_string()));
  if (inputs.size() != 1 && inputs.size() != 3)
    throw std::invalid_argument(fmt::format("{} takes 2 initial states (h, c), got {}", class_name(), inputs.size() - 1));
  const Tensor kernel = ops::variable(kernel_, x), recurrent_kernel = ops::variable(recurrent_kernel_, x);

  // Every step's input convolution at once, the steps folded into the batch. With dropout each gate sees
  // its own mask (one per sequence, kept over the steps), as Keras's cell draws four.
  auto fold_steps = [&](const Tensor& t) {
    std::vector<std::int64_t> folded{-1};
    for (int d = 2; d < s.rank(); ++d) folded.push_back(s[d]);
    return ops::reshape(t, folded);
  };
  Tensor proj;
  if (options_.dropout > 0.f) {
    std::vector<std::int64_t> one_mask_per_sequence(std::size_t(s.rank()), -1);
    one_mask_per_sequence[1] = 1;
    std::vector<Tensor> gates;
    for (int k = 0; k < kGates; ++k) {
      const Tensor dropped = ops::dropout(x, options_.dropout, seed_.value() + std::uint64_t(k), one_mask_per_sequence);
      gates.push_back(ops::conv(fold_steps(dropped), last_axis_slice(kernel, k * f, f), strides_, options_.padding, dilation_));
    }
    proj = ops::concatenate(gates, -1);
  } else {
    proj = ops::conv(fold_steps(x), kernel, strides_, options_.padding, dilation_);
  }
  if (bias_) proj = ops::add(proj, ops::variable(bias_, x));
  const Shape step_shape = proj.shape();  // (batch * steps, output spatial..., 4 * filters)
  std::vector<std::int64_t> unfolded{-1, steps}, one_step{-1};
  for (int d = 1; d < step_shape.rank(); ++d) {
    unfolded.push_back(step_shape[d]);
    one_step.push_back(step_shape[d]);
  }
  std::vector<Tensor> step_inputs = ops::split(ops::reshape(proj, unfolded), int(steps), 1);
  for (Tensor& t : step_inputs) t = ops::reshape(t, one_step);

  std::vector<Tensor> initial(inputs.begin() + 1, inputs.end());
  const bool given_states = !initial.empty();
  Shape state_shape = step_shape;
  state_shape[state_shape.rank() - 1] = f;
  for (std::size_t k = 0; k < initial.size(); ++k) {
    const Shape given = initial[k].shape();
    bool same = given.rank() == state_shape.rank();
    for (int d = 1; same && d < given.rank(); ++d) same = given[d] == state_shape[d];
    if (!same)
      throw std::invalid_argument(fmt::format("{}: initial state {} must be (batch{}, got {}", class_name(), k,
                                              state_shape.to_string().substr(state_shape.to_string().find(',')), given.to_string()));
  }
  if (!given_states) initial.assign(2, ops::full_like(last_axis_slice(step_inputs[0], 0, f), 0.f));

  const Tensor mask = get_keras_mask(x);
  if (mask.valid() && mask.shape().rank() != 2)
    throw std::invalid_argument(fmt::format("{} takes a mask of shape (batch, steps), got {} (as from Masking on frames: Keras's ConvLSTM "
                                            "refuses it too)", class_name(), mask.shape().to_string()));
  const std::vector<int> unit_strides(std::size_t(rank_), 1);
  auto recurrent_conv = [&](const Tensor& h, const Tensor& w) { return ops::conv(h, w, unit_strides, "same"); };
  const RecurrentLoop loop{.go_backwards = options_.go_backwards, .return_sequences = options_.return_sequences};
  std::vector<Tensor> result = run_recurrent_loop(steps, std::move(initial), mask, loop,
                                                  [&](std::int64_t t, std::int64_t i, const std::vector<Tensor>& states) {
    const Tensor& h = states[0];
    Tensor recurrent;
    // The same seed on every step gives every step the same masks; the first step's zero state needs none.
    if (options_.recurrent_dropout > 0.f && (i > 0 || given_states)) {
      std::vector<Tensor> gates;
      for (int k = 0; k < kGates; ++k)
        gates.push_back(recurrent_conv(ops::dropout(h, options_.recurrent_dropout, seed_.value() + std::uint64_t(kGates + k)),
                                       last_axis_slice(recurrent_kernel, k * f, f)));
      recurrent = ops::concatenate(gates, -1);
    } else {
      recurrent = recurrent_conv(h, recurrent_kernel);
    }
    const auto hc = cell(ops::add(step_inputs[std::size_t(t)], recurrent), states[1]);
    return std::vector<Tensor>{hc[0], hc[1]};
  });
  if (!options_.return_state) result.resize(1);
  return result;
}

std::vector<Tensor> ConvLSTM::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  return recurrent_output_masks(inputs, outputs.size(), options_.return_sequences);
}

Json ConvLSTM::call_node(const std::vector<Json>& tensors, const Json&) const { return recurrent_call_node(tensors); }

Json ConvLSTM::get_config() const {
  Json c = Layer::get_config();
  write_recurrent_flags(c, {.go_backwards = options_.go_backwards, .return_sequences = options_.return_sequences}, options_.return_state);
  c["filters"] = filters_;
  write_conv_window(c, kernel_size_, strides_, options_.padding, dilation_);
  c["activation"] = options_.activation;
  c["recurrent_activation"] = options_.recurrent_activation;
  c["use_bias"] = options_.use_bias;
  c["kernel_initializer"] = get_initializer(options_.kernel_initializer)->to_json();
  c["recurrent_initializer"] = get_initializer(options_.recurrent_initializer)->to_json();
  c["bias_initializer"] = get_initializer(options_.bias_initializer)->to_json();
  c["unit_forget_bias"] = options_.unit_forget_bias;
  for (const char* k : {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                        "recurrent_constraint", "bias_constraint"})
    c[k] = nullptr;
  c["dropout"] = options_.dropout;
  c["recurrent_dropout"] = options_.recurrent_dropout;
  c["seed"] = seed_.config();
  return c;
}

ConvLSTMOptions ConvLSTM::options_from_config(const Json& c, const std::string& cls, int rank, std::vector<int>& kernel_size, int& filters) {
  config::check_keys(c, cls, {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation", "recurrent_activation",
                              "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias", "dropout",
                              "recurrent_dropout", "seed", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                              "zero_output_for_mask", "time_major"});
  if (!c.contains("filters") || !c.at("filters").is_number_integer()) throw std::invalid_argument(fmt::format("{}: 'filters' must be an integer", cls));
  filters = c.at("filters").get<int>();
  if (c.value("stateful", false)) throw std::invalid_argument(fmt::format("{}: stateful=true is not supported by Strata's recurrent layers", cls));
  if (c.value("zero_output_for_mask", false)) throw std::invalid_argument(fmt::format("{}: zero_output_for_mask=true is not supported", cls));
  const ConvConfig common = read_conv_config(c, cls, rank);
  kernel_size = common.kernel_size;
  ConvLSTMOptions o;
  o.strides = common.strides;
  o.dilation_rate = common.dilation_rate;
  o.padding = common.padding;
  o.activation = c.contains("activation") && c.at("activation").is_string() ? c.at("activation").get<std::string>() : "tanh";
  if (c.contains("recurrent_activation") && c.at("recurrent_activation").is_string())
    o.recurrent_activation = c.at("recurrent_activation").get<std::string>();
  o.use_bias = common.use_bias;
  o.kernel_initializer = config::initializer(c, "kernel_initializer", "glorot_uniform");
  o.recurrent_initializer = config::initializer(c, "recurrent_initializer", "orthogonal");
  o.bias_initializer = config::initializer(c, "bias_initializer", "zeros");
  o.unit_forget_bias = c.value("unit_forget_bias", true);
  o.dropout = c.value("dropout", 0.f);
  o.recurrent_dropout = c.value("recurrent_dropout", 0.f);
  o.return_sequences = c.value("return_sequences", false);
  o.return_state = c.value("return_state", false);
  o.go_backwards = c.value("go_backwards", false);
  o.seed = config::seed(c);
  o.name = common.name;
  o.trainable = common.trainable;
  return o;
}

}  // namespace strata
