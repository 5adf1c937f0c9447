#include "layers/merging.h"

#include <fmt/format.h>

#include <stdexcept>

#include "graph/ops.h"

namespace strata {

ElementwiseMerge::ElementwiseMerge(MergeKind kind, const LayerOptions& options, const char* prefix)
    : Layer(options.name, prefix, options.trainable), kind_(kind) {}

void ElementwiseMerge::build_multi(const std::vector<Shape>& shapes) {
  if (kind_ == MergeKind::subtract && shapes.size() != 2)
    throw std::invalid_argument(fmt::format("Subtract takes exactly 2 inputs, got {}", shapes.size()));
  if (shapes.size() < 2) throw std::invalid_argument(fmt::format("a merge layer takes at least 2 inputs, got {}", shapes.size()));
}

Tensor ElementwiseMerge::call_multi(const std::vector<Tensor>& inputs) {
  if (inputs.size() < 2 || (kind_ == MergeKind::subtract && inputs.size() != 2))
    throw std::invalid_argument(fmt::format("{} '{}': wrong number of inputs ({})", class_name(), name(), inputs.size()));
  Tensor out = inputs[0];
  if (kind_ == MergeKind::maximum || kind_ == MergeKind::minimum) {
    // Keras: a masked entry takes the other operand's value, so the extreme is over unmasked values only.
    auto where = [](const Tensor& m, const Tensor& a, const Tensor& b) { return ops::add(b, ops::multiply(m, ops::subtract(a, b))); };
    Tensor out_mask = get_keras_mask(inputs[0]);
    if (out_mask.valid()) out_mask = ops::expand_dims(out_mask, -1);
    for (std::size_t i = 1; i < inputs.size(); ++i) {
      Tensor x = inputs[i];
      Tensor mask = get_keras_mask(x);
      if (mask.valid()) {
        mask = ops::expand_dims(mask, -1);
        x = where(mask, x, out);
      }
      if (out_mask.valid()) out = where(out_mask, out, x);
      out_mask = mask.valid() && out_mask.valid() ? ops::maximum(out_mask, mask) : Tensor();
      out = kind_ == MergeKind::maximum ? ops::maximum(out, x) : ops::minimum(out, x);
    }
    return out;
  }
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    switch (kind_) {
      case MergeKind::add:
      case MergeKind::average: out = ops::add(out, inputs[i]); break;
      case MergeKind::subtract: out = ops::subtract(out, inputs[i]); break;
      case MergeKind::multiply: out = ops::multiply(out, inputs[i]); break;
      case MergeKind::maximum: out = ops::maximum(out, inputs[i]); break;
      case MergeKind::minimum: out = ops::minimum(out, inputs[i]); break;
    }
  }
  if (kind_ == MergeKind::average) out = ops::multiply(out, 1.f / float(inputs.size()));
  return out;
}

std::vector<Tensor> ElementwiseMerge::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  std::vector<Tensor> masks(outputs.size());
  Tensor any;
  for (const Tensor& x : inputs) {
    const Tensor m = get_keras_mask(x);
    if (!m.valid()) return masks;  // Keras: no mask unless every input has one
    any = any.valid() ? ops::maximum(any, m) : m;
  }
  masks[0] = any;
  return masks;
}

LayerOptions ElementwiseMerge::options_from_config(const Json& c, const std::string& cls) {
  config::check_keys(c, cls, {});
  return LayerOptions{config::name(c), config::trainable(c)};
}

Concatenate::Concatenate(ConcatenateOptions options)
    : LayerBase(options.name, "concatenate", options.trainable), axis_(options.axis) {}

void Concatenate::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() < 2) throw std::invalid_argument(fmt::format("Concatenate takes at least 2 inputs, got {}", shapes.size()));
}

Tensor Concatenate::call_multi(const std::vector<Tensor>& inputs) { return ops::concatenate(inputs, axis_); }

std::vector<Tensor> Concatenate::compute_mask(const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) {
  // Keras concatenates the masks (ones for an input without one) along the axis and takes any() over the
  // last: along the features that is the OR of the masks, along the steps their concatenation.
  std::vector<Tensor> masks(outputs.size());
  std::vector<Tensor> parts;
  bool any = false;
  const int rank = inputs[0].rank();
  const int axis = axis_ < 0 ? axis_ + rank : axis_;
  for (const Tensor& x : inputs) {
    Tensor m = get_keras_mask(x);
    any = any || m.valid();
    if (!m.valid() || m.rank() != rank - 1) m = ops::max(ops::full_like(x, 1.f), {-1});
    parts.push_back(m);
  }
  if (!any) return masks;
  if (axis == rank - 1) {
    Tensor out = parts[0];
    for (std::size_t i = 1; i < parts.size(); ++i) out = ops::maximum(out, parts[i]);
    masks[0] = out;
  } else {
    masks[0] = ops::concatenate(parts, axis);
  }
  return masks;
}

Json Concatenate::get_config() const {
  Json c = Layer::get_config();
  c["axis"] = axis_;
  return c;
}

LayerPtr Concatenate::from_config(const Json& c) {
  config::check_keys(c, "Concatenate", {"axis"});
  ConcatenateOptions o;
  o.axis = c.value("axis", -1);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Concatenate>(o);
}

Dot::Dot(std::array<int, 2> axes, DotOptions options)
    : LayerBase(options.name, "dot", options.trainable), axes_(axes), normalize_(options.normalize) {}

void Dot::build_multi(const std::vector<Shape>& shapes) {
  if (shapes.size() != 2) throw std::invalid_argument(fmt::format("Dot takes exactly 2 inputs, got {}", shapes.size()));
  const Shape &a = shapes[0], &b = shapes[1];
  if (a.rank() != b.rank() || (a.rank() != 2 && a.rank() != 3))
    throw std::invalid_argument(fmt::format("Dot takes two inputs of rank 2 or 3, got {} and {}", a.to_string(), b.to_string()));
  const int ax = a.normalize_axis(axes_[0]), bx = b.normalize_axis(axes_[1]);
  if (ax == 0 || bx == 0) throw std::invalid_argument("Dot cannot contract the batch axis");
  if (a[ax] >= 0 && b[bx] >= 0 && a[ax] != b[bx])
    throw std::invalid_argument(fmt::format("Dot: axis {} of {} and axis {} of {} differ", ax, a.to_string(), bx, b.to_string()));
}

Tensor Dot::call_multi(const std::vector<Tensor>& inputs) {
  Tensor a = inputs.at(0), b = inputs.at(1);
  const int ax = a.shape().normalize_axis(axes_[0]), bx = b.shape().normalize_axis(axes_[1]);
  if (normalize_) {
    // x / sqrt(max(sum(x^2), 1e-12)), as keras's l2_normalize.
    auto l2 = [](const Tensor& x, int axis) {
      return ops::multiply(x, ops::rsqrt(ops::maximum(ops::sum(ops::square(x), {axis}, true), 1e-12f)));
    };
    a = l2(a, ax);
    b = l2(b, bx);
  }
  if (a.rank() == 2) return ops::sum(ops::multiply(a, b), {1}, true);  // (batch, 1)
  // Rank 3: (batch, n, d) x (batch, d, m) with the contracted axes moved into place.
  if (ax == 1) a = ops::transpose(a, {0, 2, 1});
  if (bx == 2) b = ops::transpose(b, {0, 2, 1});
  return ops::matmul(a, b);
}

Json Dot::get_config() const {
  Json c = Layer::get_config();
  c["axes"] = axes_[0] == axes_[1] ? Json(axes_[0]) : Json(axes_);
  c["normalize"] = normalize_;
  return c;
}

LayerPtr Dot::from_config(const Json& c) {
  config::check_keys(c, "Dot", {"axes", "normalize"});
  if (!c.contains("axes")) throw std::invalid_argument("Dot: 'axes' is missing");
  std::array<int, 2> axes{};
  const Json& a = c.at("axes");
  if (a.is_number_integer()) axes = {a.get<int>(), a.get<int>()};
  else if (a.is_array() && a.size() == 2) axes = {a[0].get<int>(), a[1].get<int>()};
  else throw std::invalid_argument(fmt::format("Dot: 'axes' must be an integer or two, got {}", a.dump()));
  DotOptions o;
  o.normalize = c.value("normalize", false);
  o.name = config::name(c);
  o.trainable = config::trainable(c);
  return std::make_shared<Dot>(axes, o);
}

}  // namespace strata
