// Adaptive average and max pooling in 1, 2 and 3 dimensions: against 9 configs run by Keras 3
// (scripts/fixtures/keras_adaptive_pooling.py), against windows computed here with loops in double, and a
// Keras-saved convnet that pools its feature maps both ways, which predicts and trains as Keras did.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "api/strata.h"
#include "keras_layer_cases.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

class KerasAdaptivePoolingReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasAdaptivePoolingReference, SameOutputsAsKeras) {
  static const Json fixture = test::load_layer_fixture("keras_adaptive_pooling.json");
  test::check_keras_layer_case(fixture["cases"][std::size_t(GetParam())]);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasAdaptivePoolingReference,
                         ::testing::Range(0, int(test::load_layer_fixture("keras_adaptive_pooling.json")["cases"].size())));

// PyTorch's and Keras's windows over (batch, h, w, c): row window i covers [floor(i h / oh), ceil((i + 1) h / oh)).
std::vector<double> reference_2d(const std::vector<float>& x, const Shape& s, int oh, int ow, bool max) {
  const std::int64_t b = s[0], h = s[1], w = s[2], c = s[3];
  std::vector<double> y;
  for (std::int64_t n = 0; n < b; ++n)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j)
        for (std::int64_t k = 0; k < c; ++k) {
          const std::int64_t r0 = i * h / oh, r1 = ((i + 1) * h + oh - 1) / oh, c0 = j * w / ow, c1 = ((j + 1) * w + ow - 1) / ow;
          double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (std::int64_t r = r0; r < r1; ++r)
            for (std::int64_t q = c0; q < c1; ++q) {
              const double v = x[std::size_t(((n * h + r) * w + q) * c + k)];
              acc = max ? std::max(acc, v) : acc + v;
            }
          y.push_back(max ? acc : acc / double((r1 - r0) * (c1 - c0)));
        }
  return y;
}

TEST(AdaptivePooling, WindowsAsComputedHere) {
  struct Case { Shape shape; int oh, ow; };
  for (const Case& k : {Case{{2, 13, 10, 3}, 4, 3}, Case{{1, 4, 9, 2}, 5, 2}, Case{{3, 8, 8, 1}, 8, 1}})
    for (const bool max : {false, true}) {
      SCOPED_TRACE(::testing::Message() << k.shape.to_string() << " -> " << k.oh << "x" << k.ow << (max ? " max" : " average"));
      clear_session();
      const auto x = test::random_vector(std::size_t(k.shape.numel()), -2.f, 2.f, 41);
      const LayerPtr layer = max ? LayerPtr(std::make_shared<AdaptiveMaxPooling2D>(IntTuple{k.oh, k.ow}))
                                 : LayerPtr(std::make_shared<AdaptiveAveragePooling2D>(IntTuple{k.oh, k.ow}));
      Shape out;
      const auto y = test::run([&](const Tensor& t) { return layer->trace(t); }, k.shape, x, &out);
      EXPECT_EQ(out, (Shape{k.shape[0], k.oh, k.ow, k.shape[3]}));
      test::expect_near_all(y, reference_2d(x, k.shape, k.oh, k.ow, max), 1e-5, "pooled");
    }
}

TEST(AdaptivePooling, ImagesOfAnySizeWaitForTheirSize) {
  clear_session();
  const Tensor in = Input({-1, -1, 2});
  Model model(in, AdaptiveAveragePooling2D(IntTuple{2, 3})(in));
  for (const Shape& shape : {Shape{2, 7, 5, 2}, Shape{1, 4, 9, 2}}) {
    const auto x = test::random_vector(std::size_t(shape.numel()), -1.f, 1.f, 43);
    const Array y = model.predict(Array::from_floats(x, shape), {.verbose = 0});
    EXPECT_EQ(y.shape(), (Shape{shape[0], 2, 3, 2}));
    test::expect_near_all(y.to_floats(), reference_2d(x, shape, 2, 3, false), 1e-5, "pooled");
  }
}

TEST(AdaptivePooling, Errors) {
  EXPECT_THROW(AdaptiveAveragePooling2D(IntTuple{0, 2}), std::invalid_argument);
  EXPECT_THROW(AdaptiveMaxPooling3D(IntTuple{2, 2}), std::invalid_argument);
  EXPECT_THROW(layer_from_config("AdaptiveAveragePooling2D", Json{{"output_size", 2}, {"data_format", "channels_first"}}), std::invalid_argument);
  EXPECT_THROW(layer_from_config("AdaptiveAveragePooling2D", Json::object()), std::invalid_argument);
  clear_session();
  const Tensor in = Input({5, 3});
  EXPECT_THROW(AdaptiveAveragePooling2D(2)(in), std::invalid_argument);
}

TEST(AdaptivePoolNet, KerasModelPredictsAndTrainsAsKeras) {
  const std::string name = "adaptive_pool_net";
  test::check_predicts_as_keras_did(name);
  test::check_saved_files_round_trip(name);
  clear_session();
  const Json record = test::read_record(name);
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  EXPECT_NEAR(test::fit_recorded_epoch(*model, record, 8), record["fit_loss"].get<double>(), 2e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(AdaptivePoolNet, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("adaptive_pool_net"); }

}  // namespace
}  // namespace strata
