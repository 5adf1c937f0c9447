#include "layers/categorical.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "graph/ops.h"

namespace strata {

namespace {

CategoricalOutput output_mode(const std::string& mode, const std::string& layer, bool allow_int) {
  if (mode == "int" && allow_int) return CategoricalOutput::integer;
  if (mode == "one_hot") return CategoricalOutput::one_hot;
  if (mode == "multi_hot" || mode == "binary") return CategoricalOutput::multi_hot;
  if (mode == "count") return CategoricalOutput::count;
  throw std::invalid_argument(fmt::format("{}: unknown output_mode '{}' (one of {}'one_hot', 'multi_hot', 'count')", layer, mode,
                                          allow_int ? "'int', " : ""));
}

const char* mode_name(CategoricalOutput mode) {
  switch (mode) {
    case CategoricalOutput::integer: return "int";
    case CategoricalOutput::one_hot: return "one_hot";
    case CategoricalOutput::multi_hot: return "multi_hot";
    case CategoricalOutput::count: return "count";
  }
  return "";
}

// 0, 1, ..., n - 1: the categories one-hot compares with.
std::vector<float> categories(std::size_t n) {
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = float(i);
  return values;
}

// A constant vector operand (not a weight).
VariablePtr constant_vector(const std::string& name, const std::vector<float>& values) {
  auto v = std::make_shared<Variable>(name, Shape{std::int64_t(values.size())}, DType::float32, false);
  v->assign(values);
  return v;
}

// Keras's encode_categorical_inputs over float category indices, with `tokens` = 0 .. depth - 1: a scalar
// becomes one sample; one-hot drops a last axis of 1 and adds the category axis; multi-hot and count add it
// and then reduce axis 1 (axis 0 of a vector, which is then one sample).
Tensor encode(Tensor indices, CategoricalOutput mode, const VariablePtr& tokens) {
  if (indices.shape().rank() == 0) indices = ops::expand_dims(indices, -1);
  const int rank = indices.shape().rank();
  if (mode == CategoricalOutput::one_hot && rank > 1 && indices.shape()[rank - 1] == 1) indices = ops::squeeze(indices, -1);
  const Tensor hot = ops::cast(ops::equal(ops::expand_dims(indices, -1), tokens), DType::float32);
  if (mode == CategoricalOutput::one_hot) return hot;
  const int axis = rank > 1 ? 1 : 0;
  return mode == CategoricalOutput::count ? ops::sum(hot, {axis}) : ops::max(hot, {axis});
}

Tensor as_float(const Tensor& x) { return x.dtype() == DType::float32 ? x : ops::cast(x, DType::float32); }

void refuse_sparse(const Json& c, const char* layer) {
  if (c.contains("sparse") && !c.at("sparse").is_null() && c.at("sparse") != Json(false))
    throw std::invalid_argument(fmt::format("{}: sparse outputs are not supported (sparse must be false)", layer));
}

}  // namespace

Discretization::Discretization(DiscretizationOptions options)
    : LayerBase(options.name, "discretization", true), options_(std::move(options)),
      mode_(output_mode(options_.output_mode, "Discretization", true)) {
  const auto& b = options_.bin_boundaries;
  if (options_.num_bins && !b.empty())
    throw std::invalid_argument(fmt::format("Discretization '{}': set either num_bins or bin_boundaries, not both", name()));
  if (options_.num_bins && *options_.num_bins < 0)
    throw std::invalid_argument(fmt::format("Discretization '{}': num_bins must be >= 0, got {}", name(), *options_.num_bins));
  if (!options_.num_bins && b.empty())
    throw std::invalid_argument(fmt::format("Discretization '{}': set either num_bins or bin_boundaries", name()));
  if (!std::is_sorted(b.begin(), b.end()))
    throw std::invalid_argument(fmt::format("Discretization '{}': bin_boundaries must be sorted, got {}", name(), Json(b).dump()));
  if (b.empty()) return;
  boundaries_ = constant_vector(name() + "/bin_boundaries", std::vector<float>(b.begin(), b.end()));
  buckets_ = constant_vector(name() + "/buckets", categories(b.size() + 1));
}

Tensor Discretization::call(const Tensor& inputs) {
  if (!boundaries_)
    throw std::invalid_argument(fmt::format("Discretization '{}': no bin_boundaries (Keras computes them from num_bins in adapt(), "
                                            "which Strata does not; give the boundaries)",
                                            name()));
  // np.digitize: the index of x is the number of boundaries at or below it.
  const Tensor x = as_float(inputs);
  const Tensor index = ops::sum(ops::cast(ops::greater_equal(ops::expand_dims(x, -1), boundaries_), DType::float32), {-1});
  if (mode_ == CategoricalOutput::integer) return ops::cast(index, DType::int32);
  return encode(index, mode_, buckets_);
}

Json Discretization::get_config() const {
  // Keras's Discretization takes exactly these arguments (no 'trainable').
  Json c;
  c["bin_boundaries"] = options_.bin_boundaries.empty() ? Json(nullptr) : Json(options_.bin_boundaries);
  c["num_bins"] = options_.num_bins ? Json(*options_.num_bins) : Json(nullptr);
  c["epsilon"] = options_.epsilon;
  c["output_mode"] = mode_name(mode_);
  c["sparse"] = false;
  c["name"] = name();
  c["dtype"] = "float32";
  return c;
}

LayerPtr Discretization::from_config(const Json& c) {
  config::check_keys(c, "Discretization", {"bin_boundaries", "num_bins", "epsilon", "output_mode", "sparse"});
  refuse_sparse(c, "Discretization");
  DiscretizationOptions o;
  if (c.contains("bin_boundaries") && !c.at("bin_boundaries").is_null()) {
    const Json& b = c.at("bin_boundaries");
    if (!b.is_array() || !std::all_of(b.begin(), b.end(), [](const Json& v) { return v.is_number(); }))
      throw std::invalid_argument(fmt::format("Discretization: 'bin_boundaries' must be a list of numbers, got {}", b.dump()));
    o.bin_boundaries = b.get<std::vector<double>>();
  }
  if (c.contains("num_bins") && !c.at("num_bins").is_null()) {
    if (!c.at("num_bins").is_number_integer())
      throw std::invalid_argument(fmt::format("Discretization: 'num_bins' must be an integer, got {}", c.at("num_bins").dump()));
    o.num_bins = c.at("num_bins").get<int>();
  }
  if (c.contains("epsilon") && !c.at("epsilon").is_null()) {
    if (!c.at("epsilon").is_number()) throw std::invalid_argument(fmt::format("Discretization: 'epsilon' must be a number, got {}", c.at("epsilon").dump()));
    o.epsilon = c.at("epsilon").get<double>();
  }
  o.output_mode = config::string_key(c, "output_mode", "Discretization", "int");
  o.name = config::name(c);
  return std::make_shared<Discretization>(std::move(o));
}

CategoryEncoding::CategoryEncoding(std::int64_t num_tokens, CategoryEncodingOptions options)
    : LayerBase(options.name, "category_encoding", true), num_tokens_(num_tokens),
      mode_(output_mode(options.output_mode, "CategoryEncoding", false)) {
  if (num_tokens < 1) throw std::invalid_argument(fmt::format("CategoryEncoding '{}': num_tokens must be >= 1, got {}", name(), num_tokens));
  tokens_ = constant_vector(name() + "/tokens", categories(static_cast<std::size_t>(num_tokens)));
}

Tensor CategoryEncoding::call(const Tensor& inputs) { return encode(as_float(inputs), mode_, tokens_); }

Json CategoryEncoding::get_config() const {
  Json c = Layer::get_config();
  c["num_tokens"] = num_tokens_;
  c["output_mode"] = mode_name(mode_);
  return c;
}

LayerPtr CategoryEncoding::from_config(const Json& c) {
  config::check_keys(c, "CategoryEncoding", {"num_tokens", "output_mode", "sparse"});
  refuse_sparse(c, "CategoryEncoding");
  if (!c.contains("num_tokens") || !c.at("num_tokens").is_number_integer())
    throw std::invalid_argument(fmt::format("CategoryEncoding: 'num_tokens' must be an integer, got {}",
                                            c.contains("num_tokens") ? c.at("num_tokens").dump() : "none"));
  return std::make_shared<CategoryEncoding>(c.at("num_tokens").get<std::int64_t>(),
                                            CategoryEncodingOptions{config::string_key(c, "output_mode", "CategoryEncoding", "multi_hot"), config::name(c)});
}

}  // namespace strata
