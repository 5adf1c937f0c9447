// GroupNormalization, UnitNormalization and RMSNormalization: against outputs recorded from Keras 3
// (scripts/fixtures/keras_group_normalization.py) and against loops in double written here.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_near_all;
using test::run;

class KerasGroupNormalizationReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasGroupNormalizationReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_group_normalization.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasGroupNormalizationReference,
        ::testing::Range(0, int(test::load_layer_fixture("keras_group_normalization.json")["cases"].size())));

TEST(GroupNormalization, MatchesLoops) {
  // (batch, h, w, channels) with channels in groups of `channels / groups` consecutive channels.
  struct Case { int groups, channels; };
  for (const Case& k : {Case{2, 6}, Case{1, 4}, Case{3, 3}}) {
    SCOPED_TRACE(::testing::Message() << "groups " << k.groups << " channels " << k.channels);
    clear_session();
    const int n = 2, h = 3, w = 2, c = k.channels, size = c / k.groups;
    const Shape shape{n, h, w, c};
    const auto x = test::random_vector(std::size_t(shape.numel()), -2, 3, 41);
    const auto gamma = test::random_vector(std::size_t(c), 0.5f, 1.5f, 42), beta = test::random_vector(std::size_t(c), -1, 1, 43);
    const auto layer = std::make_shared<GroupNormalization>(GroupNormalizationOptions{.groups = k.groups, .epsilon = 1e-3f});
    (void)run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
    layer->weights()[0]->assign(gamma);
    layer->weights()[1]->assign(beta);
    const auto y = run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
    std::vector<double> want(x.size());
    for (int b = 0; b < n; ++b)
      for (int g = 0; g < k.groups; ++g) {
        double mean = 0, var = 0;
        const double count = h * w * size;
        auto at = [&](int p, int ch) { return std::size_t((b * h * w + p) * c + ch); };
        for (int p = 0; p < h * w; ++p)
          for (int ch = g * size; ch < (g + 1) * size; ++ch) mean += x[at(p, ch)] / count;
        for (int p = 0; p < h * w; ++p)
          for (int ch = g * size; ch < (g + 1) * size; ++ch) var += (x[at(p, ch)] - mean) * (x[at(p, ch)] - mean) / count;
        for (int p = 0; p < h * w; ++p)
          for (int ch = g * size; ch < (g + 1) * size; ++ch)
            want[at(p, ch)] = (x[at(p, ch)] - mean) / std::sqrt(var + 1e-3) * gamma[std::size_t(ch)] + beta[std::size_t(ch)];
      }
    expect_near_all(y, want, 1e-5, "GroupNormalization");
  }
}

TEST(UnitNormalization, MatchesLoopsAndLeavesZeroVectorsZero) {
  clear_session();
  const Shape shape{3, 4};
  auto x = test::random_vector(std::size_t(shape.numel()), -2, 2, 44);
  for (int j = 0; j < 4; ++j) x[std::size_t(4 + j)] = 0.f;  // the second row is all zeros
  const auto layer = std::make_shared<UnitNormalization>();
  const auto y = run([&](const Tensor& t) { return layer->trace(t); }, shape, x);
  std::vector<double> want;
  for (int i = 0; i < 3; ++i) {
    double norm = 0;
    for (int j = 0; j < 4; ++j) norm += double(x[std::size_t(i * 4 + j)]) * x[std::size_t(i * 4 + j)];
    for (int j = 0; j < 4; ++j) want.push_back(norm == 0 ? 0.0 : x[std::size_t(i * 4 + j)] / std::sqrt(norm));
  }
  expect_near_all(y, want, 1e-6, "UnitNormalization");
}

TEST(RMSNormalization, MatchesLoopsOnAMiddleAxis) {
  // (batch, steps, channels) normalised over the steps: the scale has one value per step.
  clear_session();
  const int n = 2, t = 3, c = 4;
  const Shape shape{n, t, c};
  const auto x = test::random_vector(std::size_t(shape.numel()), -2, 3, 45);
  const auto scale = test::random_vector(std::size_t(t), 0.5f, 1.5f, 46);
  const auto layer = std::make_shared<RMSNormalization>(std::vector<int>{1}, 1e-4f);
  (void)run([&](const Tensor& in) { return layer->trace(in); }, shape, x);
  ASSERT_EQ(layer->weights()[0]->shape(), Shape{t});
  layer->weights()[0]->assign(scale);
  const auto y = run([&](const Tensor& in) { return layer->trace(in); }, shape, x);
  std::vector<double> want(x.size());
  auto at = [&](int b, int i, int ch) { return std::size_t((b * t + i) * c + ch); };
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch) {
      double mean_square = 0;
      for (int i = 0; i < t; ++i) mean_square += double(x[at(b, i, ch)]) * x[at(b, i, ch)] / t;
      for (int i = 0; i < t; ++i) want[at(b, i, ch)] = x[at(b, i, ch)] / std::sqrt(mean_square + 1e-4) * scale[std::size_t(i)];
    }
  expect_near_all(y, want, 1e-5, "RMSNormalization");
  test::expect_error_containing([] { Sequential({Input({4, 6}), std::make_shared<RMSNormalization>(std::vector<int>{0})}); },
                                "axis 0 is not a non-batch axis of (None, 4, 6)");
  test::expect_error_containing([] { Sequential({Input({4, 6}), std::make_shared<RMSNormalization>(std::vector<int>{1, -2})}); },
                                "axis names one axis twice");
}

TEST(GroupNormalization, Errors) {
  clear_session();
  test::expect_error_containing([] { Sequential({Input({4, 6}), GroupNormalization({.groups = 4})}); }, "6 channels cannot be split into 4 groups");
  test::expect_error_containing([] { Sequential({Input({4, 6}), GroupNormalization({.groups = 2, .axis = 0})}); }, "axis 0 is not a channel axis of (None, 4, 6)");
  test::expect_error_containing([] { GroupNormalization({.groups = 0}); }, "groups must be positive or -1");
  test::expect_error_containing([] { layer_from_config("GroupNormalization", Json{{"axis", {1, 2}}}); }, "'axis' must be one axis");
  test::expect_error_containing([] { layer_from_config("UnitNormalization", Json{{"axis", "last"}}); }, "'axis' must be an integer or a list");
}

}  // namespace
}  // namespace strata
