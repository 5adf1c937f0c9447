#include "graph/program.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <stdexcept>

#include "graph/autodiff.h"
#include "graph/planner.h"

namespace strata {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool is_view(OpKind k) {
  return k == OpKind::reshape || k == OpKind::stop_gradient || k == OpKind::in_train_phase;
}

// A shape padded with leading 1s to `rank`, for NumPy-style broadcasting.
Shape pad_to_rank(const Shape& s, int rank) {
  Shape out;
  for (int i = s.rank(); i < rank; ++i) out.push_back(1);
  for (auto d : s) out.push_back(d);
  return out;
}

}  // namespace

// One executable specialisation of the program: concrete shapes, resolved buffers, prepared launches.
struct Program::Plan {
  Mode mode;
  std::vector<Shape> input_shapes;

  struct Step {
    OpKind kind;
    const NodeAttrs* attrs;
    TensorView a, b, c, out;
    StridedView src, dst;
    GemmArgs gemm;
    std::size_t copies_begin = 0, copies_end = 0;      // concatenation and split pieces
    std::size_t operands_begin = 0, operands_inputs = 0, operands_end = 0;  // rnn_cell: inputs, then outputs
    std::uint64_t seed = 0;
    int axis = 0;
    int node = -1;  // for error messages
  };
  std::vector<Step> steps;
  std::vector<std::pair<StridedView, StridedView>> copies;
  std::vector<TensorView> operands;
  std::deque<NodeAttrs> resolved_attrs;  // nodes' attributes as this plan's shapes make them ("same" padding)

  DeviceBuffer arena;
  std::vector<TensorView> views;  // per value of the graph (empty where not part of this plan)
  std::vector<TensorView> input_views, output_views;
  std::vector<TensorView> param_views, grad_views;
  std::vector<TensorView> raw_grad_views;
  // Per step, the raw gradients final after it (-1 first: those final before any step); the step before
  // which a reducer finishes (the first clipping step, or steps.size()).
  std::vector<std::vector<int>> gradients_final_after;
  std::size_t reduce_before_step = 0;
  std::vector<std::pair<TensorView, TensorView>> assigns;  // variable, value
  PlanStats stats;
};

namespace {

std::atomic<bool> check_numerics_flag{[] {
  const char* env = std::getenv("STRATA_CHECK_NUMERICS");
  return env && *env && std::strcmp(env, "0") != 0;
}()};

}  // namespace

void enable_check_numerics(bool on) { check_numerics_flag = on; }
bool check_numerics_enabled() { return check_numerics_flag; }

Program::Program(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, ProgramOptions options)
    : options_(std::move(options)), backend_(&get_backend(options_.backend)) {
  build(inputs, outputs, nullptr);
}

Program::Program(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const Tensor& loss,
                 std::shared_ptr<Optimizer> optimizer, ProgramOptions options)
    : options_(std::move(options)), backend_(&get_backend(options_.backend)), optimizer_(std::move(optimizer)) {
  if (!optimizer_) throw std::invalid_argument("Program: training needs an optimizer");
  build(inputs, outputs, &loss);
}

Program::~Program() = default;

void Program::build(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs, const Tensor* loss) {
  if (outputs.empty() && !loss) throw std::invalid_argument("Program: nothing to compute (no outputs)");
  const Tensor& any = loss ? *loss : outputs[0];
  const Graph& src = any.graph();
  auto same_graph = [&](const Tensor& t, const char* what) {
    if (!t.valid() || &t.graph() != &src)
      throw std::invalid_argument(fmt::format("Program: an {} tensor belongs to a different graph", what));
  };
  for (const Tensor& t : inputs) same_graph(t, "input");
  for (const Tensor& t : outputs) same_graph(t, "output");
  for (const Tensor& t : inputs)
    if (src.node(src.value(t.id()).producer).kind != OpKind::input)
      throw std::invalid_argument("Program: inputs must be placeholders");

  const int nv = src.num_values();
  const int nn = int(src.nodes().size());
  std::vector<char> fed(std::size_t(nv), 0);
  for (const Tensor& t : inputs) fed[std::size_t(t.id())] = 1;

  // Values computable from the fed inputs alone; side effects over them belong to this program.
  std::vector<char> computable(std::size_t(nv), 0);
  for (int ni = 0; ni < nn; ++ni) {
    const Node& node = src.node(ni);
    bool ok = node.kind == OpKind::input ? bool(fed[std::size_t(node.outputs[0])]) : true;
    for (ValueId v : node.inputs) ok = ok && computable[std::size_t(v)];
    for (ValueId o : node.outputs) computable[std::size_t(o)] = ok;
  }

  std::vector<char> needed(std::size_t(nv), 0);
  std::vector<char> keep_node(std::size_t(nn), 0);
  for (const Tensor& t : outputs) needed[std::size_t(t.id())] = 1;
  if (loss) needed[std::size_t(loss->id())] = 1;
  for (int ni : src.side_effects()) {
    const Node& node = src.node(ni);
    if (computable[std::size_t(node.inputs[0])]) {
      keep_node[std::size_t(ni)] = 1;
      needed[std::size_t(node.inputs[0])] = 1;
    }
  }
  for (int ni = nn - 1; ni >= 0; --ni) {
    const Node& node = src.node(ni);
    bool any_needed = keep_node[std::size_t(ni)];
    for (ValueId o : node.outputs) any_needed = any_needed || needed[std::size_t(o)];
    if (!any_needed) continue;
    keep_node[std::size_t(ni)] = 1;
    for (ValueId v : node.inputs) needed[std::size_t(v)] = 1;
    if (node.kind == OpKind::deferred)
      throw std::invalid_argument(fmt::format("Program: '{}' needs the sizes its inputs {} leave unknown to be traced; a Model traces it again at "
                                              "the sizes of its data, a Program cannot (give the placeholders known sizes)",
                                              node.scope, src.value(node.inputs[0]).shape.to_string()));
    if (node.kind == OpKind::input && !fed[std::size_t(node.outputs[0])])
      throw std::invalid_argument(
          fmt::format("Program: the outputs depend on input '{}' {}, which is not among the program's inputs",
                      src.value(node.outputs[0]).name, src.value(node.outputs[0]).shape.to_string()));
  }

  // Replay the needed nodes into the program's own graph.
  graph_ = std::make_shared<Graph>();
  std::vector<ValueId> remap(std::size_t(nv), -1);
  for (int ni = 0; ni < nn; ++ni) {
    if (!keep_node[std::size_t(ni)]) continue;
    const Node& node = src.node(ni);
    NameScope scope(*graph_, node.scope);
    if (node.kind == OpKind::input) {
      const ValueInfo& info = src.value(node.outputs[0]);
      remap[std::size_t(node.outputs[0])] = graph_->add_input(info.name, info.shape, info.dtype);
      continue;
    }
    if (node.kind == OpKind::parameter) {
      remap[std::size_t(node.outputs[0])] = graph_->add_parameter(node.attrs.variable);
      continue;
    }
    std::vector<ValueId> ins;
    for (ValueId v : node.inputs) ins.push_back(remap[std::size_t(v)]);
    const ValueId first = graph_->add_node(node.kind, node.attrs, std::move(ins));
    for (std::size_t k = 0; k < node.outputs.size(); ++k) remap[std::size_t(node.outputs[k])] = first + int(k);
  }
  for (const Tensor& t : inputs) inputs_.push_back(remap[std::size_t(t.id())]);
  for (const Tensor& t : outputs) outputs_.push_back(remap[std::size_t(t.id())]);

  // Every variable lives on this program's backend.
  std::vector<std::pair<ValueId, VariablePtr>> params;
  for (const Node& node : graph_->nodes())
    if (node.kind == OpKind::parameter) {
      node.attrs.variable->move_to(*backend_);
      params.emplace_back(node.outputs[0], node.attrs.variable);
    }

  if (loss) {
    loss_ = remap[std::size_t(loss->id())];
    const Tensor loss_t(graph_, loss_);
    if (loss_t.shape().rank() != 0)
      throw std::invalid_argument(fmt::format("Program: the loss must be a scalar, got shape {}", loss_t.shape().to_string()));
    std::vector<Tensor> wrt;
    std::vector<VariablePtr> vars;
    for (auto& [v, var] : params)
      if (var->trainable()) {
        wrt.emplace_back(graph_, v);
        vars.push_back(var);
      }
    forward_nodes_ = int(graph_->nodes().size());
    const std::vector<Tensor> grads = gradients(loss_t, wrt);
    std::vector<Tensor> used;
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].valid()) continue;  // the loss does not read this variable
      trainable_.push_back(vars[i]);
      trainable_values_.push_back(wrt[i].id());
      used.push_back(grads[i]);
    }
    for (const Tensor& g : used) raw_gradient_values_.push_back(g.id());
    transform_nodes_ = int(graph_->nodes().size());
    for (const Tensor& g : optimizer_->transform_gradients(std::move(used))) gradient_values_.push_back(g.id());
    optimizer_->build(trainable_, *backend_);

    auto projections = std::make_shared<Graph>();
    std::vector<Tensor> projected;
    for (const VariablePtr& var : trainable_) {
      if (!var->constraint()) continue;
      NameScope scope(*projections, var->name());
      Tensor value;
      try {
        value = (*var->constraint())(Tensor(projections, projections->add_parameter(var)));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("the constraint of variable '{}': {}", var->name(), e.what()));
      }
      if (!(value.shape() == var->shape()) || value.dtype() != var->dtype())
        throw std::invalid_argument(fmt::format("the constraint of variable '{}' of shape {} gives shape {}", var->name(),
                                                var->shape().to_string(), value.shape().to_string()));
      if (projections->node(projections->value(value.id()).producer).kind == OpKind::parameter) continue;  // the identity
      constrained_.push_back(var);
      projected.push_back(value);
    }
    if (!projected.empty()) constraint_program_ = std::make_unique<Program>(std::vector<Tensor>{}, projected, options_);
  }
}

Program::Plan& Program::plan_for(Mode mode, std::span<const Shape> shapes) {
  for (auto& p : plans_) {
    if (p->mode != mode || p->input_shapes.size() != shapes.size()) continue;
    if (std::equal(shapes.begin(), shapes.end(), p->input_shapes.begin())) return *p;
  }
  plans_.push_back(make_plan(mode, shapes));
  return *plans_.back();
}

std::unique_ptr<Program::Plan> Program::make_plan(Mode mode, std::span<const Shape> shapes) {
  const Graph& g = *graph_;
  const bool training = mode == Mode::training;
  if (training && loss_ < 0) throw std::invalid_argument("Program: compiled without a loss, so it cannot train");
  if (shapes.size() != inputs_.size())
    throw std::invalid_argument(fmt::format("Program: expects {} inputs, got {}", inputs_.size(), shapes.size()));
  const int nv = g.num_values();
  const int nn = int(g.nodes().size());

  // What this mode computes, and what it only needs the shape of.
  std::vector<char> exec(std::size_t(nv), 0), shape_only(std::size_t(nv), 0);
  std::vector<ValueId> pinned(outputs_);
  if (training) {
    pinned.push_back(loss_);
    pinned.insert(pinned.end(), gradient_values_.begin(), gradient_values_.end());
    for (int ni : g.side_effects()) pinned.push_back(g.node(ni).inputs[0]);
  }
  for (ValueId v : pinned) exec[std::size_t(v)] = 1;
  for (int ni = nn - 1; ni >= 0; --ni) {
    const Node& node = g.node(ni);
    bool run = false, shaped = false;
    for (ValueId o : node.outputs) {
      run = run || exec[std::size_t(o)];
      shaped = shaped || shape_only[std::size_t(o)];
    }
    // A node that runs writes every output (a split's pieces, a cell's h and c), so each needs a buffer.
    if (run)
      for (ValueId o : node.outputs) exec[std::size_t(o)] = 1;
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      const ValueId v = node.inputs[k];
      if (node.kind == OpKind::in_train_phase && int(k) != (training ? 0 : 1)) continue;
      if (run && !is_shape_only_input(node.kind, int(k))) exec[std::size_t(v)] = 1;
      else if (run || shaped) shape_only[std::size_t(v)] = 1;
    }
  }

  auto plan = std::make_unique<Plan>();
  plan->mode = mode;
  plan->input_shapes.assign(shapes.begin(), shapes.end());

  // Concrete shapes.
  std::vector<ShapeAndType> conc(static_cast<std::size_t>(nv));
  std::vector<const NodeAttrs*> plan_attrs(std::size_t(nn), nullptr);  // where the plan resolved a node's attributes
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    const ValueInfo& info = g.value(inputs_[i]);
    const Shape& s = shapes[i];
    bool ok = s.rank() == info.shape.rank();
    for (int d = 0; ok && d < s.rank(); ++d) ok = s[d] >= 0 && (info.shape[d] < 0 || info.shape[d] == s[d]);
    if (!ok)
      throw std::invalid_argument(fmt::format("input '{}': expected shape {}, got {}", info.name,
                                              info.shape.to_string(), s.to_string()));
    conc[std::size_t(inputs_[i])] = {s, info.dtype};
  }
  for (int ni = 0; ni < nn; ++ni) {
    const Node& node = g.node(ni);
    bool wanted = false;
    for (ValueId o : node.outputs) wanted = wanted || exec[std::size_t(o)] || shape_only[std::size_t(o)];
    if (!wanted || node.kind == OpKind::input) continue;
    if (node.kind == OpKind::parameter) {
      conc[std::size_t(node.outputs[0])] = {node.attrs.variable->shape(), node.attrs.variable->dtype()};
      continue;
    }
    if (node.kind == OpKind::in_train_phase) {
      conc[std::size_t(node.outputs[0])] = conc[std::size_t(node.inputs[training ? 0 : 1])];
      continue;
    }
    std::vector<ShapeAndType> ins;
    for (ValueId v : node.inputs) ins.push_back(conc[std::size_t(v)]);
    const NodeAttrs* attrs = &node.attrs;
    if (node.attrs.same_padding_at_plan) {
      std::vector<Shape> in_shapes;
      for (const ShapeAndType& i : ins) in_shapes.push_back(i.shape);
      plan->resolved_attrs.push_back(attrs_for_shapes(node.kind, node.attrs, in_shapes));
      attrs = plan_attrs[std::size_t(ni)] = &plan->resolved_attrs.back();
    }
    std::vector<ShapeAndType> outs;
    try {
      outs = infer_outputs(node.kind, *attrs, ins);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(node.scope.empty() ? std::string(e.what()) : node.scope + ": " + e.what());
    }
    for (std::size_t k = 0; k < node.outputs.size(); ++k) conc[std::size_t(node.outputs[k])] = outs[k];
  }

  // Views share their source's buffer.
  std::vector<ValueId> root(static_cast<std::size_t>(nv));
  for (int v = 0; v < nv; ++v) root[std::size_t(v)] = v;
  std::vector<int> order;  // nodes that launch work, in execution order
  std::vector<int> position(std::size_t(nn), -1);
  for (int ni = 0; ni < nn; ++ni) {
    const Node& node = g.node(ni);
    if (node.outputs.empty() || !exec[std::size_t(node.outputs[0])]) continue;
    if (is_view(node.kind)) {
      const ValueId from = node.inputs[node.kind == OpKind::in_train_phase ? (training ? 0 : 1) : 0];
      root[std::size_t(node.outputs[0])] = root[std::size_t(from)];
      continue;
    }
    if (node.kind == OpKind::input || node.kind == OpKind::parameter || node.kind == OpKind::constant) continue;
    position[std::size_t(ni)] = int(order.size());
    order.push_back(ni);
  }
  const int n_steps = int(order.size());

  // Lifetimes of the buffers that the arena holds.
  std::vector<int> first(std::size_t(nv), -2), last(std::size_t(nv), -2);
  for (int ni = 0; ni < nn; ++ni) {
    const Node& node = g.node(ni);
    for (ValueId o : node.outputs) {
      if (!exec[std::size_t(o)] || root[std::size_t(o)] != o || node.kind == OpKind::parameter) continue;
      // Inputs are written before the first step, constants when the plan is made.
      const bool preset = node.kind == OpKind::input || node.kind == OpKind::constant;
      first[std::size_t(o)] = preset ? -1 : position[std::size_t(ni)];
      last[std::size_t(o)] = node.kind == OpKind::constant ? n_steps : first[std::size_t(o)];
    }
  }
  for (int s = 0; s < n_steps; ++s) {
    const Node& node = g.node(order[std::size_t(s)]);
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      if (is_shape_only_input(node.kind, int(k))) continue;
      const ValueId r = root[std::size_t(node.inputs[k])];
      if (first[std::size_t(r)] != -2) last[std::size_t(r)] = std::max(last[std::size_t(r)], s);
    }
  }
  for (ValueId v : pinned) {
    const ValueId r = root[std::size_t(v)];
    if (first[std::size_t(r)] != -2) last[std::size_t(r)] = n_steps;
  }
  // broadcast_like with mean multiplies by a per-plan scalar kept beside the intermediates.
  std::vector<int> scale_request(std::size_t(nn), -1);
  std::vector<BufferRequest> requests;
  std::vector<ValueId> request_value;
  for (int v = 0; v < nv; ++v) {
    if (first[std::size_t(v)] == -2) continue;
    const ShapeAndType& st = conc[std::size_t(v)];
    requests.push_back({std::size_t(std::max<std::int64_t>(st.shape.numel(), 0)) * dtype_size(st.dtype),
                        first[std::size_t(v)], last[std::size_t(v)]});
    request_value.push_back(v);
  }
  for (int ni : order) {
    const Node& node = g.node(ni);
    if (node.kind == OpKind::broadcast_like && node.attrs.mean) {
      scale_request[std::size_t(ni)] = int(requests.size());
      requests.push_back({sizeof(float), -1, n_steps});
    }
  }
  const BufferPlan bp = plan_buffers(requests);
  {
    std::string shape_list;
    for (const Shape& s : shapes) shape_list += (shape_list.empty() ? "" : ", ") + s.to_string();
    try {
      backend_->check_fits(bp.arena_bytes, fmt::format("the {} plan for inputs of shape {} (its intermediate buffers, after reuse)",
                                                       training ? "training" : "inference", shape_list));
    } catch (const OutOfMemoryError& e) {
      throw OutOfMemoryError(fmt::format("{}; a smaller batch size needs less", e.what()));
    }
  }
  plan->arena = DeviceBuffer(*backend_, std::max<std::size_t>(bp.arena_bytes, 1));
  char* base = static_cast<char*>(plan->arena.data());
  plan->stats.arena_bytes = bp.arena_bytes;
  plan->stats.intermediate_bytes = bp.total_bytes;
  plan->stats.steps = n_steps;

  plan->views.resize(std::size_t(nv));
  for (std::size_t i = 0; i < request_value.size(); ++i) {
    const ValueId v = request_value[i];
    plan->views[std::size_t(v)] = TensorView{base + bp.offsets[i], conc[std::size_t(v)].dtype, conc[std::size_t(v)].shape};
  }
  for (int ni = 0; ni < nn; ++ni) {
    const Node& node = g.node(ni);
    if (node.outputs.empty() || !exec[std::size_t(node.outputs[0])]) continue;
    if (node.kind == OpKind::parameter) plan->views[std::size_t(node.outputs[0])] = node.attrs.variable->view(*backend_);
    if (node.kind == OpKind::constant) backend_->fill(plan->views[std::size_t(node.outputs[0])], node.attrs.value);
  }
  for (int v = 0; v < nv; ++v) {
    const ValueId r = root[std::size_t(v)];
    if (r != v && exec[std::size_t(v)])
      plan->views[std::size_t(v)] = TensorView{plan->views[std::size_t(r)].data, conc[std::size_t(v)].dtype,
                                               conc[std::size_t(v)].shape};
  }
  auto view = [&](ValueId v) { return plan->views[std::size_t(v)]; };

  // Prepared launches.
  for (int ni : order) {
    const Node& node = g.node(ni);
    Plan::Step st{};
    st.kind = node.kind;
    st.attrs = plan_attrs[std::size_t(ni)] ? plan_attrs[std::size_t(ni)] : &node.attrs;
    st.node = ni;
    st.out = view(node.outputs[0]);
    const auto& in = node.inputs;
    switch (node.kind) {
      case OpKind::unary:
      case OpKind::cast:
      case OpKind::softmax:
      case OpKind::pool2d:
        st.a = view(in[0]);
        break;
      case OpKind::unary_backward:
      case OpKind::pool2d_backward:
        st.a = view(in[0]);
        st.b = view(in[1]);
        st.c = view(in[2]);
        break;
      case OpKind::softmax_backward:
      case OpKind::conv2d:
      case OpKind::conv2d_backward_data:
      case OpKind::conv2d_backward_filter:
      case OpKind::conv2d_transpose:
      case OpKind::gather:
      case OpKind::scatter_add:
        st.a = view(in[0]);
        st.b = view(in[1]);
        break;
      case OpKind::binary: {
        const int rank = st.out.shape.rank();
        st.a = view(in[0]);
        st.b = view(in[1]);
        st.a.shape = pad_to_rank(st.a.shape, rank);
        st.b.shape = pad_to_rank(st.b.shape, rank);
        break;
      }
      case OpKind::matmul: {
        const TensorView a = view(in[0]), b = view(in[1]);
        const bool ta = node.attrs.transpose_a, tb = node.attrs.transpose_b;
        const int ra = a.shape.rank(), rb = b.shape.rank();
        GemmArgs gm;
        gm.transpose_a = ta;
        gm.transpose_b = tb;
        gm.n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
        gm.k = tb ? b.shape[rb - 1] : b.shape[rb - 2];
        gm.lda = a.shape[ra - 1];
        gm.ldb = b.shape[rb - 1];
        gm.ldc = gm.n;
        if (rb == 2) {
          gm.m = ta ? a.shape[1] : a.numel() / std::max<std::int64_t>(a.shape[ra - 1], 1);
        } else {
          gm.m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
          gm.batch = a.numel() / std::max<std::int64_t>(a.shape[ra - 1] * a.shape[ra - 2], 1);
          gm.stride_a = a.shape[ra - 1] * a.shape[ra - 2];
          gm.stride_b = b.shape[rb - 1] * b.shape[rb - 2];
          gm.stride_c = gm.m * gm.n;
        }
        gm.a = a.as<const float>();
        gm.b = b.as<const float>();
        gm.c = st.out.as<float>();
        st.gemm = gm;
        break;
      }
      case OpKind::reduce: {
        st.a = view(in[0]);
        Shape keep = st.a.shape;
        for (auto ax : node.attrs.axes) keep[int(ax)] = 1;
        st.out.shape = keep;
        break;
      }
      case OpKind::argmax:
        st.a = view(in[0]);
        st.axis = node.attrs.axis;
        break;
      case OpKind::sum_to:
        st.a = view(in[0]);
        st.out.shape = pad_to_rank(st.out.shape, st.a.shape.rank());
        break;
      case OpKind::broadcast_like: {
        const TensorView x = view(in[0]);
        const int rank = st.out.shape.rank();
        st.src = StridedView::contiguous(TensorView{x.data, x.dtype, pad_to_rank(x.shape, rank)});
        for (int d = 0; d < rank; ++d)
          if (st.src.shape[d] == 1 && st.out.shape[d] != 1) st.src.strides[std::size_t(d)] = 0;
        st.src.shape = st.out.shape;
        st.dst = StridedView::contiguous(st.out);
        if (node.attrs.mean) {
          const int r = scale_request[std::size_t(ni)];
          st.b = TensorView{base + bp.offsets[std::size_t(r)], DType::float32, pad_to_rank(Shape(), rank)};
          const double ratio = double(std::max<std::int64_t>(x.numel(), 1)) / double(std::max<std::int64_t>(st.out.numel(), 1));
          backend_->fill(st.b, ratio);
        }
        break;
      }
      case OpKind::transpose: {
        const TensorView x = view(in[0]);
        const auto xs = contiguous_strides(x.shape);
        st.src.data = x.data;
        st.src.dtype = x.dtype;
        st.src.shape = st.out.shape;
        for (int d = 0; d < st.out.shape.rank(); ++d) st.src.strides[std::size_t(d)] = xs[std::size_t(node.attrs.target[d])];
        st.dst = StridedView::contiguous(st.out);
        break;
      }
      case OpKind::slice:
      case OpKind::slice_backward:
      case OpKind::pad: {
        // The slice region of the larger tensor, seen through its strides.
        const bool fwd = node.kind == OpKind::slice;
        const TensorView whole = fwd ? view(in[0]) : st.out;
        const TensorView part = fwd ? st.out : view(in[0]);
        const auto ws = contiguous_strides(whole.shape);
        std::int64_t offset = 0;
        for (int d = 0; d < whole.shape.rank(); ++d) offset += node.attrs.begin[d] * ws[std::size_t(d)];
        StridedView region;
        region.data = static_cast<char*>(whole.data) + offset * std::int64_t(dtype_size(whole.dtype));
        region.dtype = whole.dtype;
        region.shape = part.shape;
        region.strides = ws;
        if (fwd) {
          st.src = region;
          st.dst = StridedView::contiguous(part);
        } else {
          st.src = StridedView::contiguous(part);
          st.dst = region;
        }
        break;
      }
      case OpKind::concat: {
        const auto os = contiguous_strides(st.out.shape);
        st.copies_begin = plan->copies.size();
        std::int64_t offset = 0;
        for (ValueId v : in) {
          const TensorView piece = view(v);
          StridedView dst;
          dst.data = static_cast<char*>(st.out.data) + offset * os[std::size_t(node.attrs.axis)] * std::int64_t(dtype_size(st.out.dtype));
          dst.dtype = st.out.dtype;
          dst.shape = piece.shape;
          dst.strides = os;
          plan->copies.emplace_back(StridedView::contiguous(piece), dst);
          offset += piece.shape[node.attrs.axis];
        }
        st.copies_end = plan->copies.size();
        break;
      }
      case OpKind::split: {
        // Each piece is a region of the input, seen through the input's strides.
        const TensorView x = view(in[0]);
        const auto xs = contiguous_strides(x.shape);
        st.copies_begin = plan->copies.size();
        std::int64_t offset = 0;
        for (ValueId o : node.outputs) {
          const TensorView piece = view(o);
          StridedView src;
          src.data = static_cast<char*>(x.data) + offset * xs[std::size_t(node.attrs.axis)] * std::int64_t(dtype_size(x.dtype));
          src.dtype = x.dtype;
          src.shape = piece.shape;
          src.strides = xs;
          plan->copies.emplace_back(src, StridedView::contiguous(piece));
          offset += piece.shape[node.attrs.axis];
        }
        st.copies_end = plan->copies.size();
        break;
      }
      case OpKind::rnn_cell:
        st.operands_begin = plan->operands.size();
        for (ValueId v : in) plan->operands.push_back(view(v));
        st.operands_inputs = in.size();
        for (ValueId o : node.outputs) plan->operands.push_back(view(o));
        st.operands_end = plan->operands.size();
        break;
      case OpKind::random_like:
        st.seed = splitmix64(options_.seed ^ splitmix64(node.attrs.seed ^ splitmix64(std::uint64_t(ni))));
        break;
      default:
        throw std::logic_error(fmt::format("Program: no launch for {}", op_kind_name(node.kind)));
    }
    plan->steps.push_back(st);
  }

  for (std::size_t i = 0; i < inputs_.size(); ++i) plan->input_views.push_back(view(inputs_[i]));
  for (ValueId v : outputs_) plan->output_views.push_back(view(v));
  if (training) {
    for (ValueId v : trainable_values_) plan->param_views.push_back(view(v));
    for (ValueId v : gradient_values_) plan->grad_views.push_back(view(v));
    for (ValueId v : raw_gradient_values_) plan->raw_grad_views.push_back(view(v));
    // Which step writes each raw gradient's buffer last: its root's producer (views write nothing).
    std::vector<int> step_of_node(std::size_t(nn), -1);
    for (std::size_t k = 0; k < plan->steps.size(); ++k) step_of_node[std::size_t(plan->steps[k].node)] = int(k);
    plan->gradients_final_after.assign(plan->steps.size() + 1, {});
    for (std::size_t i = 0; i < raw_gradient_values_.size(); ++i) {
      const int producer = g.value(root[std::size_t(raw_gradient_values_[i])]).producer;
      const int step = producer >= 0 ? step_of_node[std::size_t(producer)] : -1;
      plan->gradients_final_after[std::size_t(step + 1)].push_back(int(i));
    }
    plan->reduce_before_step = plan->steps.size();
    for (std::size_t k = 0; k < plan->steps.size(); ++k)
      if (plan->steps[k].node >= transform_nodes_) {
        plan->reduce_before_step = k;
        break;
      }
    for (int ni : g.side_effects()) {
      const Node& node = g.node(ni);
      plan->assigns.emplace_back(node.attrs.variable->view(*backend_), view(node.inputs[0]));
    }
  }
  return plan;
}

void Program::execute(Plan& plan) {
  Backend& be = *backend_;
  auto launch = [&](const Plan::Step& st) {
    const NodeAttrs& at = *st.attrs;
    switch (st.kind) {
      case OpKind::unary: be.unary(at.unary, st.a, st.out, at.alpha); break;
      case OpKind::unary_backward: be.unary_backward(at.unary, st.a, st.b, st.c, st.out, at.alpha); break;
      case OpKind::binary: be.binary(at.binary, st.a, st.b, st.out); break;
      case OpKind::matmul: be.gemm(st.gemm); break;
      case OpKind::reduce: be.reduce(at.reduce, st.a, st.out); break;
      case OpKind::argmax: be.argmax(st.a, st.out, st.axis); break;
      case OpKind::softmax: be.softmax(st.a, st.out, at.axis, at.log); break;
      case OpKind::softmax_backward: be.softmax_backward(st.a, st.b, st.out, at.axis, at.log); break;
      case OpKind::sum_to: be.reduce(at.mean ? ReduceOp::mean : ReduceOp::sum, st.a, st.out); break;
      case OpKind::broadcast_like:
        be.copy_strided(st.src, st.dst, false);
        if (at.mean) {
          TensorView out = st.out;
          be.binary(BinaryOp::multiply, out, st.b, out);
        }
        break;
      case OpKind::transpose:
      case OpKind::slice: be.copy_strided(st.src, st.dst, false); break;
      case OpKind::slice_backward:
      case OpKind::pad:
        be.fill(st.out, 0.f);
        be.copy_strided(st.src, st.dst, false);
        break;
      case OpKind::concat:
      case OpKind::split:
        for (std::size_t i = st.copies_begin; i < st.copies_end; ++i)
          be.copy_strided(plan.copies[i].first, plan.copies[i].second, false);
        break;
      case OpKind::rnn_cell: {
        const std::span<const TensorView> operands(plan.operands.data() + st.operands_begin, st.operands_end - st.operands_begin);
        be.rnn_cell(st.attrs->cell, operands.first(st.operands_inputs), operands.subspan(st.operands_inputs));
        break;
      }
      case OpKind::gather: be.gather(st.a, st.b, st.out, at.axis, at.batch_dims); break;
      case OpKind::scatter_add:
        be.fill(st.out, 0.f);
        be.scatter_add(st.a, st.b, st.out, at.axis, at.batch_dims);
        break;
      case OpKind::cast: be.cast(st.a, st.out); break;
      case OpKind::conv2d: be.conv2d(st.a, st.b, st.out, at.window); break;
      case OpKind::conv2d_backward_data:
      case OpKind::conv2d_transpose: be.conv2d_backward_data(st.a, st.b, st.out, at.window); break;
      case OpKind::conv2d_backward_filter: be.conv2d_backward_filter(st.a, st.b, st.out, at.window); break;
      case OpKind::pool2d: be.pool2d(at.pool, st.a, st.out, at.window); break;
      case OpKind::pool2d_backward: be.pool2d_backward(at.pool, st.a, st.b, st.c, st.out, at.window); break;
      case OpKind::random_like:
        be.random(at.random, st.out, st.seed, std::uint64_t(step_counter_), at.alpha, at.beta);
        break;
      default: break;
    }
  };
  const bool check = check_numerics_enabled();
  if (check)
    for (std::size_t i = 0; i < inputs_.size(); ++i)
      check_finite(plan.input_views[i], [&] { return fmt::format("input '{}' holds", graph_->value(inputs_[i]).name); });
  GradientReducer* reducer = plan.mode == Mode::training ? reducer_.get() : nullptr;
  if (reducer)
    for (int i : plan.gradients_final_after[0]) reducer->gradient_ready(be, i, plan.raw_grad_views[std::size_t(i)]);
  for (std::size_t k = 0; k < plan.steps.size(); ++k) {
    const Plan::Step& st = plan.steps[k];
    if (reducer && k == plan.reduce_before_step) reducer->finish(be, plan.raw_grad_views);
    try {
      launch(st);
      if (check)
        for (ValueId v : graph_->node(st.node).outputs) check_finite(plan.views[std::size_t(v)], [&] { return describe_node(st.node); });
      if (reducer)
        for (int i : plan.gradients_final_after[k + 1]) reducer->gradient_ready(be, i, plan.raw_grad_views[std::size_t(i)]);
    } catch (const std::invalid_argument& e) {
      // Name the layer (or loss, metric) whose op failed: a bad label, say, fails in a gather.
      const std::string& scope = graph_->node(st.node).scope;
      if (scope.empty()) throw;
      throw std::invalid_argument(fmt::format("{}: {}", scope, e.what()));
    } catch (const std::out_of_range& e) {
      const std::string& scope = graph_->node(st.node).scope;
      if (scope.empty()) throw;
      throw std::out_of_range(fmt::format("{}: {}", scope, e.what()));
    }
  }
  if (reducer && plan.reduce_before_step == plan.steps.size()) reducer->finish(be, plan.raw_grad_views);
  if (plan.mode == Mode::training) {
    optimizer_->apply(*backend_, plan.param_views, plan.grad_views);
    if (check)
      for (std::size_t i = 0; i < plan.param_views.size(); ++i)
        check_finite(plan.param_views[i], [&] {
          return fmt::format("the {} update of variable '{}' produced", optimizer_->class_name(), trainable_[i]->name());
        });
    if (constraint_program_) {
      constraint_program_->run(Mode::inference, {});
      const Plan& projected = *constraint_program_->last_plan_;
      for (std::size_t i = 0; i < constrained_.size(); ++i) {
        const TensorView variable = constrained_[i]->view(*backend_);
        backend_->copy(variable.data, projected.output_views[i].data, variable.bytes());
      }
    }
    for (const auto& [variable, value] : plan.assigns) backend_->copy(variable.data, value.data, variable.bytes());
  }
}

std::string Program::describe_node(int node) const {
  const Node& n = graph_->node(node);
  const std::string who = n.scope.empty() ? std::string("an op outside any layer") : fmt::format("'{}'", n.scope);
  if (node >= forward_nodes_ && loss_ >= 0)
    return fmt::format("the gradient of {} ({}, backward pass) produced", who, op_kind_name(n.kind));
  return fmt::format("{} ({}, forward pass) produced", who, op_kind_name(n.kind));
}

void Program::check_finite(const TensorView& view, const std::function<std::string()>& what) const {
  if (view.dtype != DType::float32 || !view.data) return;
  const std::int64_t n = view.numel();
  if (n <= 0) return;
  std::vector<float> host(static_cast<std::size_t>(n));
  backend_->copy_to_host(host.data(), view.data, view.bytes());
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = host[std::size_t(i)];
    if (std::isfinite(x)) continue;
    throw NonFiniteError(fmt::format("check_numerics: {} {} (element {} of shape {}) in run {}; everything before it was finite",
                                     what(), std::isnan(x) ? "NaN" : (x > 0 ? "inf" : "-inf"), i, view.shape.to_string(), step_counter_ + 1));
  }
}


void Program::run(Mode mode, std::span<const TensorView> host_inputs) {
  if (host_inputs.size() != inputs_.size())
    throw std::invalid_argument(fmt::format("Program: expects {} inputs, got {}", inputs_.size(), host_inputs.size()));
  // The shapes live inline in the views, so this lookup allocates nothing.
  Shape shapes[16];
  if (host_inputs.size() > 16) throw std::invalid_argument("Program: at most 16 inputs");
  for (std::size_t i = 0; i < host_inputs.size(); ++i) shapes[i] = host_inputs[i].shape;
  Plan& plan = plan_for(mode, std::span<const Shape>(shapes, host_inputs.size()));
  for (std::size_t i = 0; i < host_inputs.size(); ++i) {
    const TensorView& dst = plan.input_views[i];
    if (host_inputs[i].dtype != dst.dtype)
      throw std::invalid_argument(fmt::format("input '{}': expected {}, got {}", graph_->value(inputs_[i]).name,
                                              dtype_name(dst.dtype), dtype_name(host_inputs[i].dtype)));
    backend_->copy_to_device(dst.data, host_inputs[i].data, dst.bytes());
  }
  execute(plan);
  ++step_counter_;
  last_plan_ = &plan;
}

const Shape& Program::output_shape(int index) const {
  if (!last_plan_) throw std::logic_error("Program: no run yet");
  return last_plan_->output_views.at(std::size_t(index)).shape;
}

void Program::read_output(int index, void* host, std::size_t bytes) const {
  if (!last_plan_) throw std::logic_error("Program: no run yet");
  const TensorView& v = last_plan_->output_views.at(std::size_t(index));
  if (bytes != v.bytes())
    throw std::invalid_argument(fmt::format("Program: output {} has {} bytes ({} {}), asked for {}", index, v.bytes(),
                                            dtype_name(v.dtype), v.shape.to_string(), bytes));
  backend_->copy_to_host(host, v.data, bytes);
}

float Program::read_scalar(int index) const {
  float value = 0.f;
  read_output(index, &value, sizeof(float));
  return value;
}

std::vector<float> Program::read_output(int index) const {
  const Shape& s = output_shape(index);
  std::vector<float> out(std::size_t(s.numel()));
  read_output(index, out.data(), out.size() * sizeof(float));
  return out;
}

PlanStats Program::plan_stats(Mode mode, std::span<const Shape> input_shapes) {
  return plan_for(mode, input_shapes).stats;
}

}  // namespace strata
