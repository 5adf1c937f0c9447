#include "graph/einsum.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace strata::ops {

namespace {

// A dimension's label: a letter's character code, or for the dimensions "..." stands for, -1 for the last
// of them, -2 for the one before, and so on (numpy aligns them from the right).
using Label = int;

struct Equation {
  std::string text;
  std::vector<Label> a, b, out;
};

[[noreturn]] void fail(const std::string& equation, const Shape& a, const Shape& b, const std::string& why) {
  throw std::invalid_argument(fmt::format("einsum '{}' on {} and {}: {}", equation, a.to_string(), b.to_string(), why));
}

// One operand's subscripts, with "..." expanded for an operand of `rank` dimensions (or, for the output,
// to `ellipsis` dimensions).
std::vector<Label> parse_subscripts(const std::string& subscripts, int rank, const std::string& equation, const Shape& a, const Shape& b) {
  const auto dots = subscripts.find("...");
  std::string letters = subscripts;
  if (dots != std::string::npos) letters.erase(dots, 3);
  for (char c : letters)
    if (!std::isalpha(static_cast<unsigned char>(c))) fail(equation, a, b, fmt::format("'{}' is not a subscript letter", c));
  std::vector<Label> labels;
  if (dots == std::string::npos) {
    if (int(letters.size()) != rank) fail(equation, a, b, fmt::format("'{}' names {} dimensions of {}", subscripts, letters.size(), rank));
    for (char c : letters) labels.push_back(c);
    return labels;
  }
  const int elided = rank - int(letters.size());
  if (elided < 0) fail(equation, a, b, fmt::format("'{}' names more dimensions than the {} there are", subscripts, rank));
  for (std::size_t i = 0; i < dots; ++i) labels.push_back(letters[i]);
  for (int k = 0; k < elided; ++k) labels.push_back(-(elided - k));
  for (std::size_t i = dots; i < letters.size(); ++i) labels.push_back(letters[i]);
  return labels;
}

int elided_count(const std::vector<Label>& labels) {
  return int(std::count_if(labels.begin(), labels.end(), [](Label l) { return l < 0; }));
}

Equation parse(std::string equation, const Shape& a, const Shape& b) {
  std::erase(equation, ' ');
  Equation eq{equation, {}, {}, {}};
  const auto arrow = equation.find("->");
  const std::string inputs = equation.substr(0, arrow);
  const auto comma = inputs.find(',');
  if (comma == std::string::npos || inputs.find(',', comma + 1) != std::string::npos)
    fail(equation, a, b, "two operands are needed ('ab,bc->ac')");
  eq.a = parse_subscripts(inputs.substr(0, comma), a.rank(), equation, a, b);
  eq.b = parse_subscripts(inputs.substr(comma + 1), b.rank(), equation, a, b);
  const int ellipsis = std::max(elided_count(eq.a), elided_count(eq.b));
  if (arrow != std::string::npos) {
    const std::string out = equation.substr(arrow + 2);
    if (out.find("...") == std::string::npos && ellipsis > 0) fail(equation, a, b, "the output drops the dimensions '...' stands for");
    eq.out = parse_subscripts(out, int(out.size()) - (out.find("...") == std::string::npos ? 0 : 3) + ellipsis, equation, a, b);
  } else {
    for (int k = ellipsis; k >= 1; --k) eq.out.push_back(-k);
    std::map<Label, int> uses;
    for (Label l : eq.a) ++uses[l];
    for (Label l : eq.b) ++uses[l];
    for (const auto& [label, count] : uses)
      if (label > 0 && count == 1) eq.out.push_back(label);
  }
  auto repeated = [](const std::vector<Label>& labels) {
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (std::count(labels.begin(), labels.end(), labels[i]) > 1) return true;
    return false;
  };
  if (repeated(eq.a) || repeated(eq.b)) fail(equation, a, b, "a subscript repeated within one operand (a diagonal) is not supported");
  if (repeated(eq.out)) fail(equation, a, b, "a subscript repeated in the output");
  for (Label l : eq.out)
    if (std::find(eq.a.begin(), eq.a.end(), l) == eq.a.end() && std::find(eq.b.begin(), eq.b.end(), l) == eq.b.end())
      fail(equation, a, b, fmt::format("output subscript '{}' is in neither operand", char(l)));
  return eq;
}

bool contains(const std::vector<Label>& labels, Label l) { return std::find(labels.begin(), labels.end(), l) != labels.end(); }

// Sums `x` over the dimensions whose labels are in neither `other` nor `out`, dropping them from `labels`.
Tensor sum_unshared(const Tensor& x, std::vector<Label>& labels, const std::vector<Label>& other, const std::vector<Label>& out) {
  std::vector<int> axes;
  std::vector<Label> kept;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (contains(other, labels[i]) || contains(out, labels[i])) kept.push_back(labels[i]);
    else axes.push_back(int(i));
  }
  labels = std::move(kept);
  return axes.empty() ? x : ops::sum(x, axes);
}

Tensor transposed(const Tensor& x, const std::vector<Label>& labels, const std::vector<Label>& order) {
  std::vector<int> perm;
  for (Label l : order) perm.push_back(int(std::find(labels.begin(), labels.end(), l) - labels.begin()));
  std::vector<int> identity(perm.size());
  std::iota(identity.begin(), identity.end(), 0);
  return perm == identity ? x : ops::transpose(x, perm);
}

}  // namespace

Tensor einsum(const std::string& equation, const Tensor& a, const Tensor& b) {
  Equation eq = parse(equation, a.shape(), b.shape());
  const std::string& text = eq.text;
  std::map<Label, std::int64_t> size;
  auto record = [&](const std::vector<Label>& labels, const Shape& shape) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const std::int64_t n = shape[int(i)] < 0 ? -1 : shape[int(i)];
      const auto [it, fresh] = size.emplace(labels[i], n);
      if (!fresh && it->second != n)
        fail(text, a.shape(), b.shape(),
             labels[i] > 0 ? fmt::format("subscript '{}' has sizes {} and {}", char(labels[i]), it->second, n)
                           : fmt::format("the dimensions '...' stands for differ ({} and {})", it->second, n));
    }
  };
  record(eq.a, a.shape());
  record(eq.b, b.shape());

  Tensor x = sum_unshared(a, eq.a, eq.b, eq.out);
  Tensor y = sum_unshared(b, eq.b, eq.a, eq.out);
  // Batch labels are in both operands and the output, contracted ones in both operands only, free ones in
  // one operand and the output: x becomes (batch, free_a, contracted), y (batch, contracted, free_b).
  std::vector<Label> batch, free_a, free_b, contracted;
  for (Label l : eq.out) {
    const bool in_a = contains(eq.a, l), in_b = contains(eq.b, l);
    (in_a && in_b ? batch : in_a ? free_a : free_b).push_back(l);
  }
  for (Label l : eq.a)
    if (contains(eq.b, l) && !contains(eq.out, l)) contracted.push_back(l);

  auto extent = [&](const std::vector<Label>& group) {
    std::int64_t n = 1;
    for (Label l : group) {
      if (size.at(l) < 0) return std::int64_t(-1);
      n *= size.at(l);
    }
    return n;
  };
  auto shaped = [&](const Tensor& t, std::vector<std::int64_t> dims) {
    if (std::count(dims.begin(), dims.end(), -1) > 1)
      fail(text, a.shape(), b.shape(), "more than one dimension of unknown size would have to be folded together");
    return ops::reshape(t, std::move(dims));
  };
  auto concat = [](std::initializer_list<const std::vector<Label>*> groups) {
    std::vector<Label> all;
    for (const auto* g : groups) all.insert(all.end(), g->begin(), g->end());
    return all;
  };
  const bool batched = !batch.empty();
  std::vector<std::int64_t> x_dims{extent(free_a), extent(contracted)}, y_dims{extent(contracted), extent(free_b)};
  if (batched) {
    x_dims.insert(x_dims.begin(), extent(batch));
    y_dims.insert(y_dims.begin(), extent(batch));
  }
  x = shaped(transposed(x, eq.a, concat({&batch, &free_a, &contracted})), x_dims);
  y = shaped(transposed(y, eq.b, concat({&batch, &contracted, &free_b})), y_dims);
  const std::vector<Label> result_labels = concat({&batch, &free_a, &free_b});
  std::vector<std::int64_t> result_dims;
  for (Label l : result_labels) result_dims.push_back(size.at(l));
  const Tensor product = shaped(ops::matmul(x, y), result_dims);
  return transposed(product, result_labels, eq.out);
}

}  // namespace strata::ops
