// A named, persistent tensor (a weight, a moving statistic or an optimizer slot) owned by a backend.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace strata {

class Tensor;

// A projection of a variable's value that training applies after each optimizer update (Keras's
// kernel_constraint and the like): the returned tensor, computed with primitives from `value`, replaces it.
class VariableConstraint {
 public:
  virtual ~VariableConstraint() = default;
  virtual Tensor operator()(const Tensor& value) const = 0;
};

class Variable {
 public:
  // Zero-filled storage on `backend`.
  Variable(std::string name, Shape shape, DType dtype = DType::float32, bool trainable = true,
           Backend* backend = nullptr);

  const std::string& name() const { return name_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  bool trainable() const { return trainable_; }
  void set_trainable(bool t) { trainable_ = t; }
  // Set before a training program is made from the variable; null: none.
  const std::shared_ptr<const VariableConstraint>& constraint() const { return constraint_; }
  void set_constraint(std::shared_ptr<const VariableConstraint> constraint) { constraint_ = std::move(constraint); }
  std::size_t bytes() const { return storage_.bytes(); }
  Backend& backend() const { return *storage_.backend(); }

  // The storage as a primitive operand on `backend`, moving it there first if it lives elsewhere.
  TensorView view(Backend& backend);
  TensorView view() const { return TensorView{storage_.data(), dtype_, shape_}; }
  void move_to(Backend& backend);

  void assign(std::span<const float> values);
  std::vector<float> to_vector() const;

 private:
  std::string name_;
  Shape shape_;
  DType dtype_;
  bool trainable_;
  DeviceBuffer storage_;
  std::shared_ptr<const VariableConstraint> constraint_;
};

using VariablePtr = std::shared_ptr<Variable>;

}  // namespace strata
