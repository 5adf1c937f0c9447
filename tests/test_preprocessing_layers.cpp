// Normalization and array-valued Rescaling: against outputs recorded from Keras 3 for configs as Keras writes
// them (scripts/fixtures/keras_preprocessing_layers.py), adapt() against mean and variance computed here in
// double, and EfficientNet's preprocessing saved by Keras in front of a small convnet.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_near_all;
using test::run;

class KerasPreprocessingReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasPreprocessingReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_preprocessing_layers.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasPreprocessingReference,
        ::testing::Range(0, int(test::load_layer_fixture("keras_preprocessing_layers.json")["cases"].size())));

// Mean and population variance per combination of the kept axes, in double.
void reference_statistics(const std::vector<float>& x, const Shape& shape, const std::vector<int>& kept, std::vector<double>& mean,
                          std::vector<double>& variance) {
  auto group = [&](std::size_t i) {
    const auto index = test::unravel(std::int64_t(i), shape);
    std::int64_t g = 0;
    for (int d : kept) g = g * shape[d] + index[std::size_t(d)];
    return std::size_t(g);
  };
  std::size_t groups = 1;
  for (int d : kept) groups *= std::size_t(shape[d]);
  std::vector<double> count(groups, 0);
  mean.assign(groups, 0);
  variance.assign(groups, 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    mean[group(i)] += x[i];
    count[group(i)] += 1;
  }
  for (std::size_t g = 0; g < groups; ++g) mean[g] /= count[g];
  for (std::size_t i = 0; i < x.size(); ++i) variance[group(i)] += (x[i] - mean[group(i)]) * (x[i] - mean[group(i)]);
  for (std::size_t g = 0; g < groups; ++g) variance[g] /= count[g];
}

TEST(Normalization, AdaptMatchesStatisticsComputedHere) {
  struct Case { Shape shape; std::vector<int> axis, kept; };
  for (const Case& k : {Case{{6, 5}, {-1}, {1}}, Case{{4, 3, 5, 2}, {1, -1}, {1, 3}}, Case{{7, 3}, {}, {}}}) {
    SCOPED_TRACE(::testing::Message() << "shape " << k.shape.to_string() << " kept " << k.kept.size());
    clear_session();
    // Values far from 0 with a small spread: a one-pass variance would lose most of its digits.
    auto x = test::random_vector(std::size_t(k.shape.numel()), 999.f, 1001.f, 21);
    std::vector<double> mean, variance;
    reference_statistics(x, k.shape, k.kept, mean, variance);
    // adapt() before the layer is built: the values wait for build().
    auto layer = std::make_shared<Normalization>(NormalizationOptions{.axis = k.axis});
    layer->adapt(Array::from_floats(x, k.shape));
    Shape sample = k.shape;
    const auto y = run([&](const Tensor& t) { return layer->trace(t); }, sample, x);
    ASSERT_EQ(layer->weights().size(), 3u);
    expect_near_all(layer->weights()[0]->to_vector(), mean, 1e-6, "mean");
    expect_near_all(layer->weights()[1]->to_vector(), variance, 1e-3, "variance");
    std::vector<double> want;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const auto index = test::unravel(std::int64_t(i), k.shape);
      std::size_t g = 0;
      for (int d : k.kept) g = g * std::size_t(k.shape[d]) + std::size_t(index[std::size_t(d)]);
      want.push_back((x[i] - mean[g]) / std::max(std::sqrt(variance[g]), 1e-7));
    }
    expect_near_all(y, want, 2e-3, "normalized");
    // adapt() again on the built layer replaces the values.
    const auto x2 = test::random_vector(x.size(), -2.f, 3.f, 22);
    reference_statistics(x2, k.shape, k.kept, mean, variance);
    layer->adapt(Array::from_floats(x2, k.shape));
    expect_near_all(layer->weights()[0]->to_vector(), mean, 1e-6, "mean after a second adapt");
    expect_near_all(layer->weights()[1]->to_vector(), variance, 1e-5, "variance after a second adapt");
  }
}

TEST(Normalization, ConfigsAndErrors) {
  clear_session();
  test::expect_error_containing([] { layer_from_config("Normalization", Json{{"mean", 1.0}}); }, "give both mean and variance");
  test::expect_error_containing([] { layer_from_config("Normalization", Json{{"mean", {1.0, 2.0}}, {"variance", {1.0}}}); }, "differ in shape");
  test::expect_error_containing([] { layer_from_config("Normalization", Json{{"mean", {{1.0}, {2.0, 3.0}}}, {"variance", 1.0}}); },
      "not a regular array");
  test::expect_error_containing([] { Sequential({Input({4}), Normalization({.mean = config::NumberArray{Shape{3}, {1, 2, 3}},
                                                                            .variance = config::NumberArray{Shape{3}, {1, 1, 1}}})}); },
      "does not fit the kept axes of input (None, 4)");
  test::expect_error_containing([] { Sequential({Input({4}), Normalization({.axis = {2}})}); }, "axis 2 is outside the 2 dimensions");
  test::expect_error_containing([] { Sequential({Input({4}), Normalization({.axis = {0}})}); }, "axis 0 is kept but has no known size in (None, 4)");
  test::expect_error_containing([] {
        Normalization n({.mean = config::NumberArray{Shape(), {1}}, .variance = config::NumberArray{Shape(), {1}}});
        n.adapt(Array::from_floats({1, 2}, {2, 1}));
      },
      "adapt() on a layer given mean and variance");
  test::expect_error_containing([] {
        Normalization n;
        n.adapt(Array::from_floats({1, 2, 3, 4, 5, 6}, {2, 3}));
        Sequential({Input({4}), n});
      },
      "adapt() saw 3 statistics, input (None, 4) keeps (4,)");
  test::expect_error_containing([] {
        auto n = std::make_shared<Normalization>();
        Sequential model({Input({3}), LayerRef(n)});
        n->adapt(Array::from_floats({1, 2, 3, 4, 5, 6}, {3, 2}));
      },
      "built for input (None, 3), adapt() got data (3, 2)");
  test::expect_error_containing([] { layer_from_config("Rescaling", Json{{"scale", "half"}}); }, "Rescaling: 'scale' must be a number or a list");
  // Per-channel scales from C++ broadcast against the last axis.
  clear_session();
  const auto per_channel = std::make_shared<Rescaling>(std::vector<float>{2.f, -1.f}, RescalingOptions{.offset = 0.5f});
  const auto y = run([&](const Tensor& t) { return per_channel->trace(t); }, {2, 2}, {1, 2, 3, 4});
  expect_near_all(y, {2.5, -1.5, 6.5, -3.5}, 1e-6, "per-channel Rescaling");
  EXPECT_EQ(per_channel->get_config()["scale"], Json({2.0, -1.0}));
}

// EfficientNet's preprocessing: Rescaling(1/255) -> Normalization adapted on images -> per-channel Rescaling.
TEST(Normalization, KerasEfficientNetStemPredictsAsKerasDid) { test::check_predicts_as_keras_did("pre_efficient_stem"); }
TEST(Normalization, KerasEfficientNetStemSavedFilesRoundTrip) { test::check_saved_files_round_trip("pre_efficient_stem"); }
TEST(Normalization, KerasLoadsStrataEfficientNetStem) { test::check_keras_loads_strata_file("pre_efficient_stem"); }

TEST(Normalization, AdaptGivesKerasAdaptedStatistics) {
  std::ifstream in(test::keras_model_fixtures() + "pre_efficient_stem.json");
  const Json j = Json::parse(in);
  const Json& data = j["adapt_data"];
  clear_session();
  Normalization layer;
  layer.adapt(Array::from_floats(data["values"].get<std::vector<float>>(), config::shape(data["shape"], "shape")) / 255.f);
  Sequential model({Input({12, 12, 3}), layer});
  const auto weights = model.get_weights();
  ASSERT_EQ(weights.size(), 3u);
  expect_near_all(weights[0].to_floats(), j["adapted_mean"].get<std::vector<double>>(), 1e-6, "mean");
  expect_near_all(weights[1].to_floats(), j["adapted_variance"].get<std::vector<double>>(), 1e-5, "variance");
}

}  // namespace
}  // namespace strata
