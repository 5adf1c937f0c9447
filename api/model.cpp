#include "api/model.h"
#include "api/model_layer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "api/distribution.h"
#include "graph/ops.h"
#include "graph/program.h"
#include "layers/retrace.h"

namespace strata {

namespace {

Shape batch_shape_of(const Array& a) {
  Shape s = a.shape();
  if (s.rank() > 0) s[0] = -1;
  return s;
}

std::int64_t per_row(const Shape& s) {
  std::int64_t n = 1;
  for (int i = 1; i < s.rank(); ++i) n *= s[i];
  return n;
}

bool same_sample_shape(const Shape& expected, const Shape& got) {
  if (expected.rank() != got.rank()) return false;
  for (int i = 1; i < got.rank(); ++i)
    if (expected[i] >= 0 && expected[i] != got[i]) return false;
  return true;
}

// The host side of one feed: a buffer for a batch of rows of one array, converted to the feed's dtype.
struct Feed {
  const Array* array = nullptr;
  DType dtype = DType::float32;
  std::int64_t row_elements = 0;
  Shape sample_shape;
  std::vector<std::byte> buffer;

  void prepare(const Array& a, DType d, int batch) {
    array = &a;
    dtype = d;
    row_elements = per_row(a.shape());
    sample_shape = a.shape();
    buffer.resize(std::size_t(batch) * std::size_t(row_elements) * dtype_size(d));
  }
  TensorView fill(std::span<const std::int64_t> rows) {
    array->gather_rows(rows, dtype, buffer.data());
    Shape s = sample_shape;
    s[0] = std::int64_t(rows.size());
    return TensorView{buffer.data(), dtype, s};
  }
};

// Averages gradients across the processes of a DataParallel run. Each gradient, scaled by this process's
// share of the global batch, is copied into a bucket as it becomes final; a full bucket (about 4 MiB) is
// summed across processes with a nonblocking allreduce while the backward pass goes on, and finish()
// copies the sums back. Buckets are laid out on the first step and reused after.
// What fit() tells either reducer before each step.
class ScaledGradientReducer : public GradientReducer {
 public:
  float share = 1.f;  // this process's rows / the global batch's rows
};

class AllreduceGradients : public ScaledGradientReducer {
 public:
  explicit AllreduceGradients(distribution::DataParallel& d) : d_(d) {}

  void gradient_ready(Backend& backend, int index, const TensorView& g) override {
    if (std::size_t(index) >= place_.size()) place_.resize(std::size_t(index) + 1, {-1, 0});
    Place& p = place_[std::size_t(index)];
    if (p.bucket < 0) {  // first step: append to the open bucket
      if (buckets_.empty() || buckets_.back().closed) buckets_.push_back({});
      Bucket& b = buckets_.back();
      p = {int(buckets_.size()) - 1, b.values.size()};
      b.values.resize(b.values.size() + std::size_t(g.numel()));
      ++b.members;
      if (b.values.size() * sizeof(float) >= kBucketBytes) b.closed = true;
    }
    Bucket& b = buckets_[std::size_t(p.bucket)];
    float* dst = b.values.data() + p.offset;
    backend.copy_to_host(dst, g.data, g.bytes());
    for (std::int64_t i = 0; i < g.numel(); ++i) dst[i] *= share;
    if (++b.ready == b.members && b.closed) start(b);
    d_.progress();
  }

  void finish(Backend& backend, std::span<const TensorView> grads) override {
    for (Bucket& b : buckets_) {
      b.closed = true;
      if (!b.started) start(b);
    }
    d_.wait_all();
    for (std::size_t i = 0; i < grads.size(); ++i) {
      const Place& p = place_.at(i);
      backend.copy_to_device(grads[i].data, buckets_[std::size_t(p.bucket)].values.data() + p.offset, grads[i].bytes());
    }
    for (Bucket& b : buckets_) b.ready = 0, b.started = false;
  }

 private:
  static constexpr std::size_t kBucketBytes = std::size_t(4) << 20;
  struct Bucket {
    std::vector<float> values;
    int members = 0, ready = 0;
    bool closed = false, started = false;
  };
  struct Place {
    int bucket;
    std::size_t offset;
  };
  void start(Bucket& b) {
    d_.start_allreduce_sum(b.values.data(), b.values.size());
    b.started = true;
  }
  distribution::DataParallel& d_;
  std::vector<Bucket> buckets_;
  std::vector<Place> place_;  // per gradient index
};

// The same average without leaving the device, on backends with collectives (NCCL). Each gradient, once
// final, is scaled into its place in a device bucket (the gradient itself may not be written before
// finish()); a full bucket (about 4 MiB, or one larger gradient) is summed across processes while the
// backward pass goes on, on the collective's own stream, and finish() waits for the sums and copies them
// back. Buckets are laid out and allocated on the first step and reused after.
class DeviceAllreduceGradients : public ScaledGradientReducer {
 public:
  explicit DeviceAllreduceGradients(std::shared_ptr<DeviceCollective> collective) : collective_(std::move(collective)) {}

  void gradient_ready(Backend& backend, int index, const TensorView& g) override {
    if (std::size_t(index) >= place_.size()) place_.resize(std::size_t(index) + 1, {-1, 0});
    Place& p = place_[std::size_t(index)];
    if (p.bucket < 0) {  // first step: into the open bucket if it has room, else into a new one
      const std::int64_t n = g.numel();
      if (buckets_.empty() || buckets_.back().closed || buckets_.back().used + n > buckets_.back().capacity) {
        if (!buckets_.empty()) buckets_.back().closed = true;
        Bucket b;
        b.capacity = std::max<std::int64_t>(n, kBucketFloats);
        b.values = DeviceBuffer(backend, std::size_t(b.capacity) * sizeof(float));
        buckets_.push_back(std::move(b));
      }
      Bucket& b = buckets_.back();
      p = {int(buckets_.size()) - 1, b.used};
      b.used += n;
      ++b.members;
    }
    if (!scale_.data()) scale_ = DeviceBuffer(backend, sizeof(float));
    if (share != scale_value_) {
      backend.fill(TensorView{scale_.data(), DType::float32, Shape{1}}, share);
      scale_value_ = share;
    }
    Shape ones;
    for (int i = 0; i < g.shape.rank(); ++i) ones.push_back(1);
    Bucket& b = buckets_[std::size_t(p.bucket)];
    backend.binary(BinaryOp::multiply, g, TensorView{scale_.data(), DType::float32, ones}, TensorView{at(b, p.offset), g.dtype, g.shape});
    if (++b.ready == b.members && b.closed) start(b);
  }

  void finish(Backend& backend, std::span<const TensorView> grads) override {
    for (Bucket& b : buckets_) {
      b.closed = true;
      if (!b.started) start(b);
    }
    collective_->wait();
    for (std::size_t i = 0; i < grads.size(); ++i) {
      const Place& p = place_.at(i);
      backend.copy(grads[i].data, at(buckets_[std::size_t(p.bucket)], p.offset), grads[i].bytes());
    }
    for (Bucket& b : buckets_) b.ready = 0, b.started = false;
  }

 private:
  static constexpr std::int64_t kBucketFloats = std::int64_t(1) << 20;  // 4 MiB
  struct Bucket {
    DeviceBuffer values;
    std::int64_t capacity = 0, used = 0;
    int members = 0, ready = 0;
    bool closed = false, started = false;
  };
  struct Place {
    int bucket;
    std::int64_t offset;
  };
  static float* at(Bucket& b, std::int64_t offset) { return static_cast<float*>(b.values.data()) + offset; }
  void start(Bucket& b) {
    collective_->allreduce_sum(at(b, 0), b.used);
    b.started = true;
  }
  std::shared_ptr<DeviceCollective> collective_;
  std::vector<Bucket> buckets_;
  std::vector<Place> place_;  // per gradient index
  DeviceBuffer scale_;
  float scale_value_ = -1.f;
};

// The device group of a backend in a DataParallel run, made once (joining one is a collective of its own)
// and shared by every model that trains there. Null when the backend sums through the host. Every process
// calls this at the same point, as fit() does.
std::shared_ptr<DeviceCollective> device_collective(distribution::DataParallel& d, Backend& backend) {
  static std::mutex mutex;
  // Never destroyed: a group torn down during exit could outlive the device runtime it runs on.
  static auto& groups = *new std::map<std::pair<const distribution::DataParallel*, Backend*>, std::shared_ptr<DeviceCollective>>;
  std::lock_guard lock(mutex);
  const auto key = std::make_pair(&d, &backend);
  if (auto it = groups.find(key); it != groups.end()) return it->second;
  std::vector<std::byte> id = d.is_chief() ? backend.collective_unique_id() : std::vector<std::byte>{};
  std::uint64_t size = id.size();
  d.broadcast(&size, sizeof(size));
  std::shared_ptr<DeviceCollective> group;
  if (size > 0) {
    id.resize(size);
    d.broadcast(id.data(), size);
    group = backend.join_collective(id, d.rank(), d.num_processes());
  }
  groups[key] = group;
  return group;
}

}  // namespace

// One training/evaluation program: inputs x..., y..., sample weight; outputs loss then metric statistics.
struct Model::Step {
  const Traced* traced = nullptr;
  std::vector<Shape> y_shapes;
  std::vector<DType> y_dtypes;
  std::unique_ptr<Program> program;
  struct MetricOut {
    std::shared_ptr<Metric> metric;
    int first_output = 0;
    std::vector<std::size_t> sizes;
  };
  std::vector<MetricOut> metrics;
  // Models of several outputs also log each output's loss: its name and program output.
  std::vector<std::pair<std::string, int>> output_losses;

  // Running sums over the batches of an epoch.
  double loss_sum = 0, sample_count = 0;
  std::vector<double> output_loss_sums;
  std::vector<std::vector<std::vector<double>>> totals;
  std::vector<float> scratch;

  void reset() {
    loss_sum = sample_count = 0;
    output_loss_sums.assign(output_losses.size(), 0.0);
    totals.assign(metrics.size(), {});
    for (std::size_t m = 0; m < metrics.size(); ++m)
      for (std::size_t s : metrics[m].sizes) totals[m].emplace_back(s, 0.0);
  }
  void accumulate(std::int64_t n) {
    loss_sum += double(program->read_scalar(0)) * double(n);
    sample_count += double(n);
    for (std::size_t i = 0; i < output_losses.size(); ++i) output_loss_sums[i] += double(program->read_scalar(output_losses[i].second)) * double(n);
    for (std::size_t m = 0; m < metrics.size(); ++m)
      for (std::size_t s = 0; s < metrics[m].sizes.size(); ++s) {
        const std::size_t size = metrics[m].sizes[s];
        scratch.resize(std::max(scratch.size(), size));
        program->read_output(metrics[m].first_output + int(s), scratch.data(), size * sizeof(float));
        for (std::size_t i = 0; i < size; ++i) totals[m][s][i] += scratch[i];
      }
  }
  // The running logs. Their keys are made once, so a batch only rewrites values and allocates nothing.
  Logs running;
  std::vector<double*> values;  // "loss", each output's loss, then each metric's entry in `running`
  void make_logs() {
    values = {&running["loss"]};
    for (const auto& o : output_losses) values.push_back(&running[o.first]);
    for (const MetricOut& m : metrics) values.push_back(&running[m.metric->name()]);
  }
  // The logs of every process's batches together: the sums are added across processes (metrics keep
  // additive statistics), then turned into logs as for one process.
  std::vector<double> packed;
  const Logs& global_logs(const distribution::DataParallel& d) {
    packed.clear();
    packed.push_back(loss_sum);
    packed.push_back(sample_count);
    packed.insert(packed.end(), output_loss_sums.begin(), output_loss_sums.end());
    for (const auto& metric : totals)
      for (const auto& t : metric) packed.insert(packed.end(), t.begin(), t.end());
    d.allreduce_sum(packed.data(), packed.size());
    auto swap_sums = [&] {  // the local sums and the global ones trade places
      std::size_t k = 0;
      std::swap(loss_sum, packed[k++]);
      std::swap(sample_count, packed[k++]);
      for (double& v : output_loss_sums) std::swap(v, packed[k++]);
      for (auto& metric : totals)
        for (auto& t : metric)
          for (double& v : t) std::swap(v, packed[k++]);
    };
    swap_sums();
    logs();
    swap_sums();
    return running;
  }
  const Logs& logs() {
    auto mean = [&](double sum) { return sample_count > 0 ? sum / sample_count : 0.0; };
    std::size_t v = 0;
    *values[v++] = mean(loss_sum);
    for (double sum : output_loss_sums) *values[v++] = mean(sum);
    for (std::size_t m = 0; m < metrics.size(); ++m) *values[v++] = metrics[m].metric->result(totals[m]);
    return running;
  }
};

// ---- construction ----

Model::Model(std::string name, const std::string& prefix) : name_(name.empty() ? unique_object_name(prefix) : std::move(name)) {}

Model::Model(const Tensor& inputs, const Tensor& outputs, std::string name)
    : Model(std::vector<Tensor>{inputs}, std::vector<Tensor>{outputs}, std::move(name)) {}

Model::Model(const Tensor& inputs, std::vector<Tensor> outputs, std::string name)
    : Model(std::vector<Tensor>{inputs}, std::move(outputs), std::move(name)) {}

Model::Model(std::vector<Tensor> inputs, const Tensor& outputs, std::string name)
    : Model(std::move(inputs), std::vector<Tensor>{outputs}, std::move(name)) {}

Model::Model(std::vector<Tensor> inputs, std::vector<Tensor> outputs, std::string name)
    : Model(std::move(name), "functional") {
  if (inputs.empty() || outputs.empty()) throw std::invalid_argument(fmt::format("Model '{}': needs inputs and outputs", name_));
  const Graph& g = inputs[0].graph();
  for (const Tensor& t : inputs)
    if (&t.graph() != &g || g.node(g.value(t.id()).producer).kind != OpKind::input)
      throw std::invalid_argument(fmt::format("Model '{}': every input must be a keras Input() tensor of one graph", name_));
  for (const Tensor& t : outputs)
    if (!t.valid() || &t.graph() != &g)
      throw std::invalid_argument(fmt::format("Model '{}': the outputs are not computed from the inputs' graph", name_));
  inputs_ = std::move(inputs);
  outputs_ = std::move(outputs);

  // The values the outputs depend on.
  std::vector<char> needed(static_cast<std::size_t>(g.num_values()), 0);
  for (const Tensor& t : outputs_) needed[std::size_t(t.id())] = 1;
  for (int ni = int(g.nodes().size()) - 1; ni >= 0; --ni) {
    const Node& node = g.node(ni);
    bool any = false;
    for (ValueId o : node.outputs) any = any || needed[std::size_t(o)];
    if (any)
      for (ValueId v : node.inputs) needed[std::size_t(v)] = 1;
  }
  // Layers in the order they were called, each once.
  std::set<const void*> seen;
  for (const ModuleCall& call : g.calls()) {
    bool used = false;
    for (ValueId o : call.outputs) used = used || needed[std::size_t(o)];
    if (call.inputs.empty()) used = std::any_of(inputs_.begin(), inputs_.end(), [&](const Tensor& t) { return t.id() == call.outputs[0]; });
    if (!used || !seen.insert(call.module.get()).second) continue;
    auto layer = std::static_pointer_cast<Layer>(call.module);
    layers_.push_back(layer);
  }
  for (const Tensor& t : inputs_) {
    std::shared_ptr<InputLayer> input;
    for (const ModuleCall& call : g.calls())
      if (call.inputs.empty() && call.outputs[0] == t.id()) input = std::static_pointer_cast<InputLayer>(std::static_pointer_cast<Layer>(call.module));
    input_layers_.push_back(input);
  }
}

std::vector<DType> Model::input_dtypes() const {
  std::vector<DType> out;
  for (const Tensor& t : inputs_) out.push_back(t.dtype());
  return out;
}

Model::~Model() = default;

LayerPtr Model::as_layer() {
  if (!as_layer_) as_layer_ = std::make_shared<ModelLayer>(*this);
  return as_layer_;
}

Tensor Model::operator()(const Tensor& inputs) { return (*this)(std::vector<Tensor>{inputs}); }

Tensor Model::operator()(const std::vector<Tensor>& inputs) { return (*as_layer())(inputs); }

std::vector<Tensor> Model::apply(const std::vector<Tensor>& inputs) { return as_layer()->apply(inputs); }

void Model::ensure_graph(const std::vector<Array>*) {}

void Model::invalidate() {
  steps_.clear();
  predict_programs_.clear();
  traced_.clear();
}

const Model::Traced& Model::traced_for(const std::vector<Array>& x) {
  ensure_graph(&x);
  const std::span<const Node> nodes = outputs_[0].graph().nodes();
  const bool deferred = std::any_of(nodes.begin(), nodes.end(), [](const Node& n) { return n.kind == OpKind::deferred; });
  std::vector<Shape> shapes;
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    Shape s = inputs_[i].shape();
    for (int d = 1; deferred && i < x.size() && d < s.rank() && d < x[i].shape().rank(); ++d)
      if (s[d] < 0) s[d] = x[i].shape()[d];
    shapes.push_back(std::move(s));
  }
  for (const auto& t : traced_)
    if (t->input_shapes == shapes) {
      t->last_used = ++trace_clock_;
      return *t;
    }
  make_room_for_a_trace();
  auto traced = std::make_unique<Traced>();
  traced->input_shapes = shapes;
  traced->last_used = ++trace_clock_;
  if (!deferred) {
    traced->inputs = inputs_;
    traced->outputs = outputs_;
  } else {
    GraphScope scope(std::make_shared<Graph>());
    ConcreteRetrace keep_shapes;
    for (std::size_t i = 0; i < inputs_.size(); ++i)
      traced->inputs.push_back(ops::placeholder(shapes[i], inputs_[i].dtype(), inputs_[i].graph().value(inputs_[i].id()).name));
    traced->outputs = class_name() == "Sequential" ? retrace_chain(layers_, traced->inputs[0])
                                                   : retrace_calls(inputs_, outputs_, layers_, traced->inputs, name_);
  }
  traced_.push_back(std::move(traced));
  return *traced_.back();
}

void Model::make_room_for_a_trace() {
  while (traced_.size() >= kMaxTracedShapes) {
    auto victim = traced_.end();
    for (auto it = traced_.begin(); it != traced_.end(); ++it)
      if ((*it)->pinned == 0 && (victim == traced_.end() || (*it)->last_used < (*victim)->last_used)) victim = it;
    if (victim == traced_.end()) return;  // all in use: keep them
    const Traced* gone = victim->get();
    std::erase_if(steps_, [&](const std::unique_ptr<Step>& s) { return s->traced == gone; });
    std::erase_if(predict_programs_, [&](const auto& entry) { return entry.first == gone; });
    traced_.erase(victim);
  }
}

const std::vector<Tensor>& Model::inputs() {
  ensure_graph(nullptr);
  return inputs_;
}

const std::vector<Tensor>& Model::outputs() {
  ensure_graph(nullptr);
  return outputs_;
}

LayerPtr Model::get_layer(const std::string& name) const {
  for (const auto& l : layers_)
    if (l->name() == name) return l;
  std::string names;
  for (const auto& l : layers_) names += (names.empty() ? "" : ", ") + l->name();
  throw std::invalid_argument(fmt::format("model '{}' has no layer named '{}' (layers: {})", name_, name, names));
}

LayerPtr Model::get_layer(int index) const {
  if (index < 0 || index >= int(layers_.size()))
    throw std::out_of_range(fmt::format("model '{}': layer index {} out of range (it has {} layers)", name_, index, layers_.size()));
  return layers_[std::size_t(index)];
}

// ---- weights ----

std::vector<VariablePtr> Model::weights() const {
  std::vector<VariablePtr> out;
  for (const auto& l : layers_)
    for (const auto& w : l->weights())
      if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  return out;
}

std::vector<VariablePtr> Model::trainable_weights() const {
  std::vector<VariablePtr> out;
  for (const auto& w : weights())
    if (w->trainable()) out.push_back(w);
  return out;
}

std::vector<VariablePtr> Model::non_trainable_weights() const {
  std::vector<VariablePtr> out;
  for (const auto& w : weights())
    if (!w->trainable()) out.push_back(w);
  return out;
}

std::int64_t Model::count_params() const {
  std::int64_t n = 0;
  for (const auto& w : weights()) n += w->shape().numel();
  return n;
}

std::vector<Array> Model::get_weights() const {
  std::vector<Array> out;
  for (const auto& w : weights()) out.push_back(Array::from_floats(w->to_vector(), w->shape()));
  return out;
}

void Model::set_weights(const std::vector<Array>& arrays) {
  const auto ws = weights();
  if (arrays.size() != ws.size())
    throw std::invalid_argument(fmt::format("set_weights: model '{}' has {} weights, got {} arrays", name_, ws.size(), arrays.size()));
  for (std::size_t i = 0; i < ws.size(); ++i)
    if (arrays[i].shape() != ws[i]->shape())
      throw std::invalid_argument(fmt::format("set_weights: weight '{}' has shape {}, got an array of shape {}", ws[i]->name(),
                                              ws[i]->shape().to_string(), arrays[i].shape().to_string()));
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i]->assign(arrays[i].to_floats());
}

// ---- compile ----

void Model::compile(CompileOptions options) {
  if (!options.optimizer.get()) throw std::invalid_argument(fmt::format("compile: model '{}' needs an optimizer", name_));
  get_backend(options.backend);  // fails now, with the reason, for an unknown or unavailable backend
  options_ = std::move(options);
  compiled_ = true;
  seed_ = next_random_seed();
  retrace();
  invalidate();
}

void Model::compile(OptimizerRef optimizer, LossRef loss, std::vector<MetricRef> metrics) {
  compile(CompileOptions{.optimizer = std::move(optimizer), .loss = std::move(loss), .metrics = std::move(metrics)});
}

void Model::check_inputs(const std::vector<Array>& x, const char* what) {
  ensure_graph(&x);
  if (x.size() != inputs_.size())
    throw std::invalid_argument(fmt::format("{}: model '{}' has {} inputs, got {} arrays", what, name_, inputs_.size(), x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!same_sample_shape(inputs_[i].shape(), x[i].shape()))
      throw std::invalid_argument(fmt::format("{}: input '{}' of model '{}' expects shape {}, got data of shape {}", what,
                                              inputs_[i].graph().value(inputs_[i].id()).name, name_,
                                              inputs_[i].shape().to_string(), x[i].shape().to_string()));
    if (x[i].rows() != x[0].rows())
      throw std::invalid_argument(fmt::format("{}: input arrays have different numbers of samples ({} and {})", what, x[0].rows(), x[i].rows()));
  }
}

std::vector<std::string> Model::output_names() {
  ensure_graph(nullptr);
  std::vector<std::string> names;
  for (const Tensor& o : outputs_) {
    std::string name;
    for (const ModuleCall& call : o.graph().calls())
      if (std::find(call.outputs.begin(), call.outputs.end(), o.id()) != call.outputs.end())
        name = static_cast<const Layer*>(call.module.get())->name();
    names.push_back(name.empty() ? o.graph().node(o.graph().value(o.id()).producer).scope : name);
  }
  return names;
}

Model::Step& Model::step_for(const std::vector<Array>& x, const std::vector<Array>& y) {
  if (!compiled_) throw std::invalid_argument(fmt::format("model '{}' must be compiled before fit/evaluate", name_));
  check_inputs(x, "fit");
  const Traced& traced = traced_for(x);
  const std::vector<Tensor>& outputs = traced.outputs;
  if (y.size() != outputs_.size())
    throw std::invalid_argument(fmt::format("model '{}' has {} outputs, got {} target arrays", name_, outputs_.size(), y.size()));
  // Each output's loss, weight and metrics, from the per-output maps or the model-wide ones.
  const std::vector<std::string> names = output_names();
  auto check_names = [&](const auto& map, const char* what) {
    for (const auto& entry : map)
      if (std::find(names.begin(), names.end(), entry.first) == names.end())
        throw std::invalid_argument(fmt::format("compile: {} names '{}', which is not an output of model '{}' (outputs: {})", what, entry.first,
                                                name_, fmt::join(names, ", ")));
  };
  check_names(options_.output_losses, "output_losses");
  check_names(options_.loss_weights, "loss_weights");
  check_names(options_.output_metrics, "output_metrics");
  std::vector<std::shared_ptr<Loss>> losses;
  for (const std::string& name : names) {
    auto it = options_.output_losses.find(name);
    const auto& loss = it != options_.output_losses.end() ? it->second.get() : options_.loss.get();
    if (!loss) throw std::invalid_argument(fmt::format("model '{}' was compiled without a loss for output '{}'", name_, name));
    losses.push_back(loss);
  }
  std::vector<Shape> y_shapes;
  std::vector<DType> y_dtypes;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (y[i].rows() != x[0].rows())
      throw std::invalid_argument(fmt::format("model '{}': {} input samples but {} target samples", name_, x[0].rows(), y[i].rows()));
    y_shapes.push_back(batch_shape_of(y[i]));
    y_dtypes.push_back(losses[i]->sparse_labels() ? DType::int32 : DType::float32);
  }
  for (auto& s : steps_)
    if (s->traced == &traced && s->y_shapes == y_shapes && s->y_dtypes == y_dtypes) return *s;

  auto step = std::make_unique<Step>();
  step->traced = &traced;
  step->y_shapes = y_shapes;
  step->y_dtypes = y_dtypes;
  GraphScope scope(outputs[0].graph_ptr());
  std::vector<Tensor> feeds = traced.inputs;
  std::vector<Tensor> y_true;
  for (std::size_t i = 0; i < y.size(); ++i) y_true.push_back(ops::placeholder(y_shapes[i], y_dtypes[i], fmt::format("target_{}", i)));
  const Tensor weights = ops::placeholder({-1}, DType::float32, "sample_weight");
  Tensor total;
  std::vector<Tensor> output_losses;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor l = (*losses[i])(y_true[i], outputs[i], weights, get_keras_mask(outputs[i]));
    output_losses.push_back(l);
    auto w = options_.loss_weights.find(names[i]);
    const Tensor weighted = w == options_.loss_weights.end() ? l : ops::multiply(l, w->second);
    total = total.valid() ? ops::add(total, weighted) : weighted;
  }
  // As Keras 3 adds model.losses: every regularized trainable weight's penalty, in training and evaluation,
  // and the losses the layer calls of this model's forward pass added (activity regularizers).
  for (const LayerPtr& layer : layers_)
    for (const auto& [weight, regularizer] : layer->weight_regularizers()) total = ops::add(total, regularizer.penalty(ops::variable(weight, total)));
  {
    const Graph& g = total.graph();
    std::vector<char> forward(std::size_t(g.num_values()), 0);
    for (const Tensor& o : outputs) forward[std::size_t(o.id())] = 1;
    for (int ni = int(g.nodes().size()) - 1; ni >= 0; --ni) {
      const Node& node = g.node(ni);
      if (std::any_of(node.outputs.begin(), node.outputs.end(), [&](ValueId v) { return forward[std::size_t(v)]; }))
        for (ValueId v : node.inputs) forward[std::size_t(v)] = 1;
    }
    for (const Graph::AddedLoss& added : g.added_losses())
      if (added.source < int(forward.size()) && forward[std::size_t(added.source)]) total = ops::add(total, Tensor(outputs[0].graph_ptr(), added.penalty));
  }
  std::vector<Tensor> program_outputs{total};
  if (outputs.size() > 1)
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      step->output_losses.emplace_back(names[i] + "_loss", int(program_outputs.size()));
      program_outputs.push_back(output_losses[i]);
    }
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    auto own = options_.output_metrics.find(names[o]);
    const std::vector<MetricRef>& refs = own != options_.output_metrics.end() ? own->second : options_.metrics;
    const bool binary_loss = losses[o]->class_name() == "BinaryCrossentropy";
    for (const MetricRef& ref : refs) {
      std::shared_ptr<Metric> metric = ref.metric();
      if (!metric) {
        if (ref.name() == "accuracy" || ref.name() == "acc") {
          const Shape& ys = y_shapes[o];
          const Shape& ps = outputs[o].shape();
          const bool sparse = ys.rank() < ps.rank() || (ys.rank() == ps.rank() && ys[ys.rank() - 1] == 1 && ps[ps.rank() - 1] != 1);
          metric = resolve_accuracy(ref.name(), binary_loss, sparse, ps);
        } else {
          metric = get_metric(ref.name());
        }
      }
      if (outputs.size() > 1) {
        if (ref.metric() && own == options_.output_metrics.end())
          throw std::invalid_argument(fmt::format("model '{}' has {} outputs: give metric objects per output (output_metrics) or metrics by name",
                                                  name_, outputs.size()));
        metric->set_name(fmt::format("{}_{}", names[o], metric->name()));
      }
      // As Keras, a masked output's mask weights the steps of mean metrics (accuracy, MAE, ...).
      Tensor metric_weights = weights;
      const Tensor mask = get_keras_mask(outputs[o]);
      if (mask.valid() && mask.rank() >= 2 && std::dynamic_pointer_cast<metrics::MeanMetric>(metric)) {
        std::vector<std::int64_t> column(std::size_t(mask.rank()), 1);
        column[0] = -1;
        metric_weights = ops::multiply(ops::reshape(weights, column), mask);
      }
      Step::MetricOut mo{metric, int(program_outputs.size()), {}};
      for (const Tensor& s : metric->statistics(y_true[o], outputs[o], metric_weights)) {
        if (!s.shape().is_fully_known())
          throw std::invalid_argument(fmt::format("metric {}: statistics must have a fixed shape", metric->name()));
        mo.sizes.push_back(std::size_t(std::max<std::int64_t>(s.shape().numel(), 1)));
        program_outputs.push_back(s);
      }
      step->metrics.push_back(std::move(mo));
    }
  }
  for (const Tensor& t : y_true) feeds.push_back(t);
  feeds.push_back(weights);
  step->program = std::make_unique<Program>(feeds, program_outputs, total, options_.optimizer.get(),
                                            ProgramOptions{.backend = options_.backend, .seed = seed_});
  step->reset();
  step->make_logs();
  steps_.push_back(std::move(step));
  return *steps_.back();
}

Program& Model::predict_program(const Traced& traced) {
  for (auto& [key, program] : predict_programs_)
    if (key == &traced) return *program;
  predict_programs_.emplace_back(&traced, std::make_unique<Program>(traced.inputs, traced.outputs,
                                                                    ProgramOptions{.backend = compiled_ ? options_.backend : "cpu", .seed = seed_}));
  return *predict_programs_.back().second;
}

// ---- fit / evaluate / predict ----

namespace {

// Per-sample weights: sample_weight times class_weight[label] (the label's argmax for one-hot targets).
std::vector<float> sample_weights(const Array& y, const Array& sample_weight, const std::map<int, float>& class_weight) {
  const std::int64_t n = y.rows();
  std::vector<float> w(static_cast<std::size_t>(n), 1.f);
  if (!sample_weight.empty()) {
    if (sample_weight.size() != n)
      throw std::invalid_argument(fmt::format("sample_weight has {} values for {} samples", sample_weight.size(), n));
    w = sample_weight.to_floats();
  }
  if (!class_weight.empty()) {
    const std::vector<float> labels = y.to_floats();
    const std::int64_t k = per_row(y.shape());
    for (std::int64_t i = 0; i < n; ++i) {
      int label;
      if (k == 1) label = int(std::lround(labels[std::size_t(i)]));
      else label = int(std::max_element(labels.begin() + i * k, labels.begin() + (i + 1) * k) - (labels.begin() + i * k));
      const auto it = class_weight.find(label);
      if (it == class_weight.end())
        throw std::invalid_argument(fmt::format("class_weight has no entry for class {} (sample {})", label, i));
      w[std::size_t(i)] *= it->second;
    }
  }
  return w;
}

// Feeds for one batch: x..., y..., sample weight.
struct BatchFeeds {
  std::vector<Feed> feeds;
  std::vector<float> weight_buffer;
  std::vector<TensorView> views;

  BatchFeeds(const std::vector<Array>& x, const std::vector<DType>& x_dtypes, const std::vector<Array>& y, const std::vector<DType>& y_dtypes,
             int batch) {
    feeds.resize(x.size() + y.size());
    for (std::size_t i = 0; i < x.size(); ++i) feeds[i].prepare(x[i], x_dtypes[i], batch);
    for (std::size_t i = 0; i < y.size(); ++i) feeds[x.size() + i].prepare(y[i], y_dtypes[i], batch);
    weight_buffer.resize(std::size_t(batch));
    views.resize(feeds.size() + 1);
  }
  std::span<const TensorView> fill(std::span<const std::int64_t> rows, std::span<const float> weights) {
    for (std::size_t i = 0; i < feeds.size(); ++i) views[i] = feeds[i].fill(rows);
    for (std::size_t i = 0; i < rows.size(); ++i) weight_buffer[i] = weights[std::size_t(rows[i])];
    views.back() = TensorView{weight_buffer.data(), DType::float32, {std::int64_t(rows.size())}};
    return views;
  }
};

// Moving statistics follow each process's own rows; averaging them after every step (one allreduce for
// all, through a buffer sized once) keeps the processes' weights identical.
void average_across(distribution::DataParallel& d, Backend& backend, const std::vector<VariablePtr>& variables,
                    std::vector<float>& buffer) {
  std::size_t total = 0;
  for (const VariablePtr& v : variables) total += std::size_t(v->shape().numel());
  buffer.resize(total);
  std::size_t at = 0;
  for (const VariablePtr& v : variables) {
    const TensorView t = v->view(backend);
    backend.copy_to_host(buffer.data() + at, t.data, t.bytes());
    at += std::size_t(t.numel());
  }
  d.start_allreduce_sum(buffer.data(), buffer.size());
  d.wait_all();
  for (float& value : buffer) value /= float(d.num_processes());
  at = 0;
  for (const VariablePtr& v : variables) {
    const TensorView t = v->view(backend);
    backend.copy_to_device(t.data, buffer.data() + at, t.bytes());
    at += std::size_t(t.numel());
  }
}

void check_batch_size(int batch_size) {
  if (batch_size <= 0) throw std::invalid_argument(fmt::format("batch_size must be positive, got {}", batch_size));
}

}  // namespace

History Model::fit(const Array& x, const Array& y, FitOptions options) {
  return fit(std::vector<Array>{x}, std::vector<Array>{y}, std::move(options));
}

History Model::fit(const std::vector<Array>& x, const std::vector<Array>& y, FitOptions options) {
  check_batch_size(options.batch_size);
  if (options.epochs < 0 || options.initial_epoch < 0) throw std::invalid_argument("fit: epochs and initial_epoch must be >= 0");
  if (!(options.validation_split >= 0 && options.validation_split < 1))
    throw std::invalid_argument(fmt::format("fit: validation_split must be in [0, 1), got {}", options.validation_split));
  Step& step = step_for(x, y);
  const TracedPin keep_training(*step.traced);  // callbacks may predict at other sizes meanwhile
  const std::int64_t n = x[0].rows();
  const std::vector<float> weights = sample_weights(y[0], options.sample_weight, options.class_weight);
  const std::shared_ptr<distribution::DataParallel> dist = distribution::distribution();
  const bool parallel = dist && dist->num_processes() > 1;
  if (parallel && !dist->is_chief()) options.verbose = 0;  // one progress bar: the chief's

  // validation_split: the last fraction, before shuffling (as Keras).
  std::int64_t n_train = n;
  std::vector<std::int64_t> val_rows;
  if (options.validation_split > 0 && !options.validation_data) {
    n_train = std::int64_t(std::ceil(double(n) * (1.0 - options.validation_split)));
    for (std::int64_t i = n_train; i < n; ++i) val_rows.push_back(i);
    if (val_rows.empty() || n_train == 0)
      throw std::invalid_argument(fmt::format("fit: validation_split {} leaves no training or no validation samples out of {}",
                                              options.validation_split, n));
  }
  // Validation samples keep their sample weights but not the class weights, as in Keras.
  std::vector<float> val_weights = options.class_weight.empty() ? weights : sample_weights(y[0], options.sample_weight, {});
  if (options.validation_data) {
    const ValidationData& v = *options.validation_data;
    check_inputs(v.x, "fit validation_data");
    if (v.y.size() != y.size()) throw std::invalid_argument("fit: validation_data has a different number of targets");
    for (std::size_t i = 0; i < v.y.size(); ++i)
      if (v.y[i].shape().rank() != y[i].shape().rank() || per_row(v.y[i].shape()) != per_row(y[i].shape()))
        throw std::invalid_argument(fmt::format("fit: validation targets of shape {} do not match training targets of shape {}",
                                                v.y[i].shape().to_string(), y[i].shape().to_string()));
    val_rows.resize(std::size_t(v.x[0].rows()));
    std::iota(val_rows.begin(), val_rows.end(), 0);
    val_weights = sample_weights(v.y[0], v.sample_weight, {});
  }
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n_train));
  std::iota(rows.begin(), rows.end(), 0);
  const std::int64_t steps = (n_train + options.batch_size - 1) / options.batch_size;

  auto history = std::make_shared<History>();
  auto progbar = std::make_shared<ProgbarLogger>();
  progbar->set_in_fit(true);
  std::vector<CallbackPtr> callbacks = options.callbacks;
  if (parallel && !dist->is_chief())
    std::erase_if(callbacks, [](const CallbackPtr& cb) { return cb->chief_only(); });
  callbacks.push_back(history);
  if (options.verbose > 0) callbacks.push_back(progbar);
  for (auto& cb : callbacks) {
    cb->set_model(this);
    cb->set_params({options.epochs, steps, options.verbose});
  }
  std::vector<CallbackPtr> quiet_callbacks = options.callbacks;  // validation reports to the user's callbacks only

  BatchFeeds feeds(x, input_dtypes(), y, step.y_dtypes, options.batch_size);
  std::uint64_t drawn = next_random_seed();  // drawn either way, so that later seeds do not shift
  std::shared_ptr<ScaledGradientReducer> reducer;
  std::vector<VariablePtr> moving;  // non-trainable variables that steps update (BatchNormalization's)
  std::vector<float> moving_buffer;
  if (parallel) {
    // Every process starts from the chief's weights and visits the rows in the chief's order.
    for (const VariablePtr& v : this->weights()) {
      std::vector<float> values = v->to_vector();
      dist->broadcast(values.data(), values.size() * sizeof(float));
      v->assign(values);
      if (!v->trainable()) moving.push_back(v);
    }
    dist->broadcast(&drawn, sizeof(drawn));
    if (auto group = device_collective(*dist, step.program->backend()))
      reducer = std::make_shared<DeviceAllreduceGradients>(std::move(group));
    else
      reducer = std::make_shared<AllreduceGradients>(*dist);
  }
  step.program->set_gradient_reducer(reducer);
  struct ForgetReducer {  // also when a callback or a step throws
    Program& program;
    ~ForgetReducer() { program.set_gradient_reducer(nullptr); }
  } forget_reducer{*step.program};
  shuffle_rng_.seed(options.shuffle_seed ? *options.shuffle_seed : drawn);
  stop_training = false;
  fit_program_ = step.program.get();
  struct ForgetProgram {  // also when a callback or a step throws
    Program*& program;
    ~ForgetProgram() { program = nullptr; }
  } forget{fit_program_};
  if (n_train > 0) {
    // Planned now, so that a batch too large for the memory fails before training starts.
    const std::span<const TensorView> first = feeds.fill(std::span<const std::int64_t>(rows.data(), std::size_t(std::min<std::int64_t>(options.batch_size, n_train))), weights);
    std::vector<Shape> shapes;
    for (const TensorView& v : first) shapes.push_back(v.shape);
    step.program->plan_stats(Mode::training, shapes);
  }
  next_epoch_ = options.initial_epoch;
  resume_from_.reset();
  for (auto& cb : callbacks) cb->on_train_begin({});
  if (resume_from_) {  // a callback restored a checkpoint of this training
    std::istringstream state(resume_from_->shuffle_state);
    state >> shuffle_rng_;
    if (!state) throw std::invalid_argument("fit: the checkpoint's shuffling state is unreadable");
    step.program->set_steps_run(resume_from_->program_steps);
    next_epoch_ = resume_from_->next_epoch;
    resume_from_.reset();
  }
  // As Keras, the optimizer's moving averages (use_ema) replace the weights when fit() ends, before
  // on_train_end, and also when it ends by an exception.
  Optimizer& optimizer = *options_.optimizer.get();
  struct FinalizeWeights {
    Optimizer& optimizer;
    bool enabled;
    ~FinalizeWeights() {
      if (!enabled) return;
      try {
        optimizer.finalize_variable_values();
      } catch (...) {  // already unwinding from the first error
      }
    }
  } finalize_on_error{optimizer, options.epochs > 0};
  Logs epoch_logs;
  for (int epoch = next_epoch_; epoch < options.epochs && !stop_training; ++epoch) {
    for (auto& cb : callbacks) cb->on_epoch_begin(epoch, {});
    // Each epoch shuffles the rows afresh, so that an epoch's order depends only on the generator's state
    // (which a checkpoint saves), not on earlier epochs' orders.
    if (options.shuffle) {
      std::iota(rows.begin(), rows.end(), 0);
      std::shuffle(rows.begin(), rows.end(), shuffle_rng_);
    }
    step.reset();
    for (std::int64_t b = 0; b < steps; ++b) {
      for (auto& cb : callbacks) cb->on_train_batch_begin(b, {});
      const std::int64_t begin = b * options.batch_size;
      const std::int64_t count = std::min<std::int64_t>(options.batch_size, n_train - begin);
      std::span<const std::int64_t> batch_rows(rows.data() + begin, std::size_t(count));
      std::int64_t local = count;
      if (parallel) {
        // This process's contiguous share of the global batch. One left without rows (a last batch smaller
        // than the number of processes) runs a row that weighs nothing in the average, to keep in step.
        const std::int64_t lo = count * dist->rank() / dist->num_processes();
        local = count * (dist->rank() + 1) / dist->num_processes() - lo;
        batch_rows = local > 0 ? batch_rows.subspan(std::size_t(lo), std::size_t(local)) : batch_rows.first(1);
        reducer->share = float(local) / float(count);
      }
      step.program->run(Mode::training, feeds.fill(batch_rows, weights));
      if (local > 0) step.accumulate(local);
      if (parallel && !moving.empty()) average_across(*dist, step.program->backend(), moving, moving_buffer);
      const Logs& logs = parallel ? step.global_logs(*dist) : step.logs();
      for (auto& cb : callbacks) cb->on_train_batch_end(b, logs);
      if (parallel) {  // a callback's stop in any process stops them all
        double stop = stop_training ? 1 : 0;
        dist->allreduce_sum(&stop, 1);
        stop_training = stop > 0;
      }
      if (stop_training) break;
    }
    epoch_logs = parallel ? step.global_logs(*dist) : step.logs();
    if (!val_rows.empty()) {
      const std::vector<Array>& vx = options.validation_data ? options.validation_data->x : x;
      const std::vector<Array>& vy = options.validation_data ? options.validation_data->y : y;
      Step& val_step = step_for(vx, vy);
      const TracedPin keep_validation(*val_step.traced);
      for (const auto& [key, value] : run_evaluation(val_step, vx, vy, val_weights, val_rows, options.batch_size, quiet_callbacks))
        epoch_logs["val_" + key] = value;
    }
    next_epoch_ = epoch + 1;
    for (auto& cb : callbacks) cb->on_epoch_end(epoch, epoch_logs);
  }
  finalize_on_error.enabled = false;
  if (options.epochs > 0) optimizer.finalize_variable_values();
  for (auto& cb : callbacks) cb->on_train_end(epoch_logs);
  History result = *history;
  result.set_model(nullptr);
  return result;
}

Model::TrainingProgress Model::training_progress() const {
  if (!fit_program_) throw std::logic_error(fmt::format("model '{}': training_progress() is only known during fit()", name_));
  std::ostringstream state;
  state << shuffle_rng_;
  return TrainingProgress{next_epoch_, state.str(), fit_program_->steps_run()};
}

void Model::resume_training(const TrainingProgress& progress) {
  if (!fit_program_) throw std::logic_error(fmt::format("model '{}': resume_training() is only possible during fit()", name_));
  resume_from_ = progress;
}

Logs Model::run_evaluation(Step& step, const std::vector<Array>& x, const std::vector<Array>& y, std::span<const float> weights,
                           std::span<const std::int64_t> rows, int batch_size, std::vector<CallbackPtr>& callbacks) {
  BatchFeeds feeds(x, input_dtypes(), y, step.y_dtypes, batch_size);
  step.reset();
  for (auto& cb : callbacks) cb->on_test_begin({});
  const std::int64_t n = std::int64_t(rows.size());
  const std::int64_t steps = (n + batch_size - 1) / batch_size;
  for (std::int64_t b = 0; b < steps; ++b) {
    for (auto& cb : callbacks) cb->on_test_batch_begin(b, {});
    const std::int64_t begin = b * batch_size, count = std::min<std::int64_t>(batch_size, n - begin);
    step.program->run(Mode::inference, feeds.fill(rows.subspan(std::size_t(begin), std::size_t(count)), weights));
    step.accumulate(count);
    const Logs& logs = step.logs();
    for (auto& cb : callbacks) cb->on_test_batch_end(b, logs);
  }
  const Logs logs = step.logs();
  for (auto& cb : callbacks) cb->on_test_end(logs);
  return logs;
}

Logs Model::evaluate(const Array& x, const Array& y, EvaluateOptions options) {
  return evaluate(std::vector<Array>{x}, std::vector<Array>{y}, std::move(options));
}

Logs Model::evaluate(const std::vector<Array>& x, const std::vector<Array>& y, EvaluateOptions options) {
  check_batch_size(options.batch_size);
  Step& step = step_for(x, y);
  const TracedPin keep(*step.traced);
  const std::vector<float> weights = sample_weights(y[0], options.sample_weight, {});
  std::vector<std::int64_t> rows(static_cast<std::size_t>(x[0].rows()));
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<CallbackPtr> callbacks = options.callbacks;
  auto progbar = std::make_shared<ProgbarLogger>();
  progbar->set_test_steps((x[0].rows() + options.batch_size - 1) / options.batch_size);
  if (options.verbose > 0) callbacks.push_back(progbar);
  for (auto& cb : callbacks) {
    cb->set_model(this);
    cb->set_params({1, 0, options.verbose});
  }
  return run_evaluation(step, x, y, weights, rows, options.batch_size, callbacks);
}

Array Model::predict(const Array& x, PredictOptions options) {
  return predict(std::vector<Array>{x}, std::move(options))[0];
}

std::vector<Array> Model::predict(const std::vector<Array>& x, PredictOptions options) {
  check_batch_size(options.batch_size);
  check_inputs(x, "predict");
  const Traced& traced = traced_for(x);
  const TracedPin keep(traced);
  const std::vector<Tensor>& outputs = traced.outputs;
  Program& program = predict_program(traced);
  const std::int64_t n = x[0].rows();
  // An output's other unknown dimensions (an image of any size in, one of its size out) are known once the
  // first batch has run: every sample of x has the same shape.
  std::vector<Array> results(outputs.size());
  auto allocate_results = [&](bool after_run) {
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      Shape s = after_run ? program.output_shape(int(o)) : outputs[o].shape();
      for (int d = 1; d < s.rank(); ++d) s[d] = std::max<std::int64_t>(s[d], 0);  // no rows: nothing ran to size them
      s[0] = n;
      results[o] = Array(s, outputs[o].dtype());  // an int32 output (Discretization's indices) stays int32
    }
  };
  const bool sized_by_run = std::any_of(outputs.begin(), outputs.end(), [](const Tensor& o) {
    return std::any_of(o.shape().begin() + 1, o.shape().end(), [](std::int64_t d) { return d < 0; });
  });
  if (!sized_by_run || n == 0) allocate_results(false);
  const int rows_per_batch = int(std::min<std::int64_t>(options.batch_size, std::max<std::int64_t>(n, 1)));
  std::vector<Feed> feeds(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) feeds[i].prepare(x[i], inputs_[i].dtype(), rows_per_batch);
  std::vector<TensorView> views(x.size());
  std::vector<std::int64_t> rows(static_cast<std::size_t>(std::min<std::int64_t>(options.batch_size, n)));
  const std::int64_t steps = (n + options.batch_size - 1) / options.batch_size;
  std::vector<CallbackPtr> callbacks = options.callbacks;
  if (options.verbose > 0) {
    auto progbar = std::make_shared<ProgbarLogger>();
    progbar->set_test_steps(steps);
    callbacks.push_back(progbar);
  }
  for (auto& cb : callbacks) {
    cb->set_model(this);
    cb->set_params({1, steps, options.verbose});
    cb->on_predict_begin({});
  }
  for (std::int64_t b = 0; b < steps; ++b) {
    for (auto& cb : callbacks) cb->on_predict_batch_begin(b, {});
    const std::int64_t begin = b * options.batch_size, count = std::min<std::int64_t>(options.batch_size, n - begin);
    std::iota(rows.begin(), rows.begin() + count, begin);
    for (std::size_t i = 0; i < x.size(); ++i) views[i] = feeds[i].fill(std::span<const std::int64_t>(rows.data(), std::size_t(count)));
    program.run(Mode::inference, views);
    if (b == 0 && sized_by_run) allocate_results(true);
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const std::int64_t k = per_row(results[o].shape());
      const std::size_t element = dtype_size(results[o].dtype());
      program.read_output(int(o), static_cast<std::byte*>(results[o].data()) + std::size_t(begin * k) * element, std::size_t(count * k) * element);
    }
    for (auto& cb : callbacks) cb->on_predict_batch_end(b, {});
  }
  for (auto& cb : callbacks) cb->on_predict_end({});
  return results;
}

Logs Model::train_on_batch(const Array& x, const Array& y, const Array& sample_weight) {
  return run_one_batch(Mode::training, x, y, sample_weight);
}

Logs Model::test_on_batch(const Array& x, const Array& y, const Array& sample_weight) {
  return run_one_batch(Mode::inference, x, y, sample_weight);
}

Logs Model::run_one_batch(Mode mode, const Array& x, const Array& y, const Array& sample_weight) {
  const std::vector<Array> xs{x}, ys{y};
  Step& step = step_for(xs, ys);
  const std::vector<float> weights = sample_weights(y, sample_weight, {});
  std::vector<std::int64_t> rows(static_cast<std::size_t>(x.rows()));
  std::iota(rows.begin(), rows.end(), 0);
  BatchFeeds feeds(xs, input_dtypes(), ys, step.y_dtypes, int(std::max<std::int64_t>(x.rows(), 1)));
  step.reset();
  step.program->run(mode, feeds.fill(rows, weights));
  step.accumulate(x.rows());
  return step.logs();
}

// ---- Sequential ----

LayerRef::LayerRef(const Tensor& input) {
  if (input.valid())
    for (const ModuleCall& call : input.graph().calls())
      if (call.inputs.empty() && call.outputs.size() == 1 && call.outputs[0] == input.id()) layer_ = std::static_pointer_cast<Layer>(call.module);
  if (!layer_) throw std::invalid_argument("Sequential: a tensor in the layer list must come from Input()");
}

Sequential::Sequential(std::vector<LayerRef> layers, std::string name) : Model(std::move(name), "sequential") {
  for (auto& l : layers) add(std::move(l));
}

void Sequential::add(LayerRef ref) {
  const LayerPtr& layer = ref.get();
  if (auto input = std::dynamic_pointer_cast<InputLayer>(layer)) {
    if (!input_layers_.empty() || !layers_.empty())
      throw std::invalid_argument(fmt::format("Sequential '{}': an InputLayer can only come first", name_));
    input_layers_.push_back(input);
  } else {
    for (const auto& l : layers_)
      if (l == layer) throw std::invalid_argument(fmt::format("Sequential '{}': layer '{}' is already in the model", name_, layer->name()));
    layers_.push_back(layer);
  }
  inputs_.clear();
  outputs_.clear();
  invalidate();
  if (!input_layers_.empty() && !layers_.empty()) ensure_graph(nullptr);  // shape errors show at once
}

void Sequential::pop() {
  if (layers_.empty()) throw std::invalid_argument(fmt::format("Sequential '{}': there is no layer to pop", name_));
  layers_.pop_back();
  inputs_.clear();
  outputs_.clear();
  invalidate();
}

void Sequential::ensure_graph(const std::vector<Array>* x) {
  if (!outputs_.empty()) return;
  Shape batch_shape;
  DType dtype = DType::float32;
  std::string input_name = "input_layer";
  if (!input_layers_.empty()) {
    batch_shape = input_layers_[0]->batch_shape();
    dtype = input_layers_[0]->dtype();
    input_name = input_layers_[0]->name();
  } else if (x && x->size() == 1) {
    batch_shape = batch_shape_of((*x)[0]);  // built from the first data it sees, as Keras does
  } else if (traced_shape_.rank() > 0) {
    batch_shape = traced_shape_;
    dtype = traced_dtype_;
  } else {
    throw std::invalid_argument(fmt::format("Sequential '{}' has no input shape yet: start it with Input(shape) or call fit/predict first", name_));
  }
  if (layers_.empty()) throw std::invalid_argument(fmt::format("Sequential '{}' has no layers", name_));
  // A graph of its own, so that retracing after add()/pop() leaves nothing behind.
  GraphScope scope(std::make_shared<Graph>());
  Tensor t = ops::placeholder(batch_shape, dtype, input_name);
  inputs_ = {t};
  for (const auto& layer : layers_) t = layer->trace(t);
  outputs_ = {t};
  traced_shape_ = batch_shape;
  traced_dtype_ = dtype;
}

void Sequential::retrace() {
  inputs_.clear();
  outputs_.clear();
}

}  // namespace strata
