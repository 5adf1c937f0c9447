// Discretization and CategoryEncoding: against outputs recorded from Keras 3 for configs as Keras writes them
// (scripts/fixtures/keras_categorical_layers.py), against loops written here, and in a Keras-saved model of
// structured data that predicts and trains as Keras did.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "api/strata.h"
#include "keras_model_cases.h"
#include "test_util.h"

namespace strata {
namespace {

Json load_cases() {
  std::ifstream in(std::string(STRATA_FIXTURES_DIR) + "/keras_categorical_layers.json");
  if (!in) throw std::runtime_error("cannot open tests/fixtures/keras_categorical_layers.json");
  return Json::parse(in);
}

// `layer` alone in a model over inputs of `shape` (batch first) and `dtype`: its prediction on x.
Array predict_alone(const LayerPtr& layer, const Shape& shape, DType dtype, const std::vector<float>& x) {
  clear_session();
  std::vector<std::int64_t> sample(shape.begin() + 1, shape.end());
  const Tensor in = Input(Shape(std::span<const std::int64_t>(sample)), {.dtype = dtype});
  Model model(in, (*layer)(in));
  return model.predict(Array::from_floats(x, shape), {.verbose = 0});
}

class KerasCategoricalReference : public ::testing::TestWithParam<int> {};

TEST_P(KerasCategoricalReference, SameOutputsAsKeras) {
  static const Json fixture = load_cases();
  const Json& c = fixture["cases"][std::size_t(GetParam())];
  SCOPED_TRACE(c["name"].get<std::string>());
  const LayerPtr layer = layer_from_json(c["layer"]);
  const DType dtype = c["input_dtype"] == "int32" ? DType::int32 : DType::float32;
  const Array y = predict_alone(layer, config::shape(c["input_shape"], "input_shape"), dtype, c["x"].get<std::vector<float>>());
  EXPECT_EQ(y.shape(), config::shape(c["output_shape"], "output_shape"));
  EXPECT_EQ(y.dtype(), c["output_dtype"] == "int32" ? DType::int32 : DType::float32);
  const auto got = y.to_floats();
  const auto want = c["y"].get<std::vector<double>>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(double(got[i]), want[i]) << "element " << i;
  // Keras's own keys, read back to the same layer.
  const Json config = layer->get_config();
  for (const auto& [key, value] : c["layer"]["config"].items())
    if (key != "name" && key != "dtype") EXPECT_EQ(config.at(key), value) << key;
  EXPECT_EQ(layer_from_config(layer->class_name(), config)->get_config(), config);
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasCategoricalReference, ::testing::Range(0, int(load_cases()["cases"].size())),
                         [](const auto& info) { return load_cases()["cases"][std::size_t(info.param)]["name"].get<std::string>(); });

TEST(Discretization, BucketsAsCountedHere) {
  const std::vector<double> boundaries = {-0.5, -0.1, 0.0, 0.3, 0.8};
  const std::size_t depth = boundaries.size() + 1;
  auto x = test::random_vector(6 * 7, -1.f, 1.f, 5);
  x[0] = 0.f;  // on a boundary: the bucket above
  x[1] = -0.5f;
  std::vector<double> index(x.size());
  for (std::size_t i = 0; i < x.size(); ++i)
    index[i] = double(std::count_if(boundaries.begin(), boundaries.end(), [&](double b) { return float(b) <= x[i]; }));
  auto ints = predict_alone(std::make_shared<Discretization>(DiscretizationOptions{.bin_boundaries = boundaries}), {6, 7}, DType::float32, x);
  EXPECT_EQ(ints.dtype(), DType::int32);
  const auto got = ints.to_floats();
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], index[i]) << i;
  // count: per sample, how many of its 7 values fall into each bucket.
  auto counts = predict_alone(std::make_shared<Discretization>(DiscretizationOptions{.bin_boundaries = boundaries, .output_mode = "count"}),
                              {6, 7}, DType::float32, x);
  ASSERT_EQ(counts.shape(), (Shape{6, std::int64_t(depth)}));
  std::vector<float> want(6 * depth, 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) want[(i / 7) * depth + std::size_t(index[i])] += 1.f;
  EXPECT_EQ(counts.to_floats(), want);
}

TEST(CategoryEncoding, EncodingsAsCountedHere) {
  const std::int64_t tokens = 9;
  std::vector<float> x(5 * 4);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7 + i / 3) % tokens);
  std::vector<float> count(5 * tokens, 0.f), multi(5 * tokens, 0.f), one(5 * 4 * tokens, 0.f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t sample = i / 4, token = std::size_t(x[i]);
    count[sample * tokens + token] += 1.f;
    multi[sample * tokens + token] = 1.f;
    one[i * tokens + token] = 1.f;
  }
  auto encode = [&](const char* mode) {
    return predict_alone(std::make_shared<CategoryEncoding>(tokens, CategoryEncodingOptions{.output_mode = mode}), {5, 4}, DType::int32, x)
        .to_floats();
  };
  EXPECT_EQ(encode("count"), count);
  EXPECT_EQ(encode("multi_hot"), multi);
  EXPECT_EQ(encode("one_hot"), one);
}

TEST(CategoricalLayers, ClearErrors) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { Discretization(DiscretizationOptions{}); }).find("set either num_bins or bin_boundaries"), std::string::npos);
  EXPECT_NE(message([] { Discretization(DiscretizationOptions{.bin_boundaries = {1.0, 0.0}}); }).find("must be sorted"), std::string::npos);
  EXPECT_NE(message([] { Discretization(DiscretizationOptions{.bin_boundaries = {0.0}, .output_mode = "binary_tree"}); })
                .find("unknown output_mode 'binary_tree'"),
            std::string::npos);
  EXPECT_NE(message([] { CategoryEncoding(0); }).find("num_tokens must be >= 1"), std::string::npos);
  EXPECT_NE(message([] { CategoryEncoding(3, {.output_mode = "int"}); }).find("unknown output_mode 'int'"), std::string::npos);
  EXPECT_NE(message([] { layer_from_config("CategoryEncoding", Json{{"num_tokens", 4}, {"sparse", true}}); }).find("sparse"), std::string::npos);
  // num_bins alone waits for adapt() in Keras: the call says what is missing.
  const auto unadapted = std::make_shared<Discretization>(DiscretizationOptions{.num_bins = 4});
  EXPECT_NE(message([&] { predict_alone(unadapted, {2, 3}, DType::float32, std::vector<float>(6, 0.f)); }).find("no bin_boundaries"),
            std::string::npos);
}

TEST(StructuredCategories, KerasModelPredictsAndTrainsAsKeras) {
  const std::string name = "structured_categories";
  test::check_predicts_as_keras_did(name);
  test::check_saved_files_round_trip(name);
  clear_session();
  const Json record = test::read_record(name);
  auto model = load_model(test::keras_model_fixtures() + name + ".keras");
  std::vector<Array> inputs;
  for (const Json& e : record["inputs"]) inputs.push_back(test::read_recorded_array(e));
  const auto labels = record["y"].get<std::vector<std::int32_t>>();
  const History h = model->fit(inputs, {Array::from_ints(labels, {std::int64_t(labels.size())})},
                               {.epochs = 1, .batch_size = 8, .verbose = 0, .shuffle = false});
  EXPECT_NEAR(h.history.at("loss")[0], record["fit_loss"].get<double>(), 2e-5);
  test::expect_recorded_weights(model->get_weights(), record["trained_weights"]);
}

TEST(StructuredCategories, KerasLoadsStrataFile) { test::check_keras_loads_strata_file("structured_categories"); }

}  // namespace
}  // namespace strata
