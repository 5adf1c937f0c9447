// Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) against loops in
// double, their configs through the registry, and the errors for a wrong number or shape of inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "api/strata.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata {
namespace {

std::vector<float> run(const LayerPtr& layer, const std::vector<Shape>& shapes, const std::vector<std::vector<float>>& data, Shape* out_shape) {
  std::vector<Tensor> inputs;
  for (const Shape& s : shapes) {
    Shape symbolic = s;
    symbolic[0] = -1;
    inputs.push_back(ops::placeholder(symbolic));
  }
  const Tensor out = (*layer)(inputs);
  Program p(inputs, {out});
  std::vector<TensorView> feeds;
  for (std::size_t i = 0; i < shapes.size(); ++i) feeds.push_back({const_cast<float*>(data[i].data()), DType::float32, shapes[i]});
  p.run(Mode::inference, feeds);
  *out_shape = p.output_shape(0);
  return p.read_output(0);
}

TEST(Merging, ElementwiseMergesMatchLoops) {
  const Shape shape{2, 3, 4};
  const auto a = test::random_vector(24, -1, 1, 1), b = test::random_vector(24, -1, 1, 2), c = test::random_vector(24, -1, 1, 3);
  struct Case {
    LayerPtr layer;
    std::function<double(double, double, double)> f;
    int inputs;
  };
  clear_session();
  const Case cases[] = {
      {std::make_shared<Add>(), [](double x, double y, double z) { return x + y + z; }, 3},
      {std::make_shared<Subtract>(), [](double x, double y, double) { return x - y; }, 2},
      {std::make_shared<Multiply>(), [](double x, double y, double z) { return x * y * z; }, 3},
      {std::make_shared<Average>(), [](double x, double y, double z) { return (x + y + z) / 3; }, 3},
      {std::make_shared<Maximum>(), [](double x, double y, double z) { return std::max({x, y, z}); }, 3},
      {std::make_shared<Minimum>(), [](double x, double y, double) { return std::min(x, y); }, 2},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.layer->class_name());
    std::vector<std::vector<float>> data{a, b, c};
    data.resize(std::size_t(k.inputs));
    Shape out;
    const auto y = run(k.layer, std::vector<Shape>(std::size_t(k.inputs), shape), data, &out);
    EXPECT_EQ(out, shape);
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], k.f(a[i], b[i], k.inputs > 2 ? c[i] : 0.0), 1e-6) << i;
    EXPECT_EQ(layer_from_config(k.layer->class_name(), k.layer->get_config())->get_config(), k.layer->get_config());
  }
}

TEST(Merging, ConcatenateAndDotMatchLoops) {
  clear_session();
  Shape out;
  const auto a = test::random_vector(2 * 3 * 4, -1, 1, 4), b = test::random_vector(2 * 3 * 2, -1, 1, 5);
  const auto cat = run(std::make_shared<Concatenate>(), {{2, 3, 4}, {2, 3, 2}}, {a, b}, &out);
  ASSERT_EQ(out, (Shape{2, 3, 6}));
  for (int r = 0; r < 6; ++r)
    for (int j = 0; j < 6; ++j)
      EXPECT_EQ(cat[std::size_t(r * 6 + j)], j < 4 ? a[std::size_t(r * 4 + j)] : b[std::size_t(r * 2 + j - 4)]);
  // Dot of (2, 3, 4) and (2, 5, 4) over their last axes: (2, 3, 5); normalised: cosine similarities.
  const auto x = test::random_vector(2 * 3 * 4, -1, 1, 6), y = test::random_vector(2 * 5 * 4, -1, 1, 7);
  for (bool normalize : {false, true}) {
    SCOPED_TRACE(normalize ? "normalize" : "plain");
    const auto d = run(std::make_shared<Dot>(std::array<int, 2>{2, 2}, DotOptions{.normalize = normalize}), {{2, 3, 4}, {2, 5, 4}}, {x, y}, &out);
    ASSERT_EQ(out, (Shape{2, 3, 5}));
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 5; ++j) {
          double dot = 0, nx = 0, ny = 0;
          for (int k = 0; k < 4; ++k) {
            const double u = x[std::size_t((n * 3 + i) * 4 + k)], v = y[std::size_t((n * 5 + j) * 4 + k)];
            dot += u * v;
            nx += u * u;
            ny += v * v;
          }
          EXPECT_NEAR(d[std::size_t((n * 3 + i) * 5 + j)], normalize ? dot / std::sqrt(nx * ny) : dot, 1e-5);
        }
  }
  // Rank 2: (batch, 1).
  const auto d2 = run(std::make_shared<Dot>(1), {{3, 4}, {3, 4}}, {std::vector<float>(a.begin(), a.begin() + 12), std::vector<float>(x.begin(), x.begin() + 12)}, &out);
  ASSERT_EQ(out, (Shape{3, 1}));
  for (int r = 0; r < 3; ++r) {
    double dot = 0;
    for (int k = 0; k < 4; ++k) dot += double(a[std::size_t(r * 4 + k)]) * x[std::size_t(r * 4 + k)];
    EXPECT_NEAR(d2[std::size_t(r)], dot, 1e-5);
  }
}

TEST(Merging, WrongInputsSayWhatIsWrong) {
  clear_session();
  const Tensor a = Input({4}), b = Input({4}), c = Input({3});
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { (void)Subtract()({a, b, a}); }).find("exactly 2 inputs"), std::string::npos);
  EXPECT_NE(message([&] { (void)Add()(a); }).find("at least 2 inputs"), std::string::npos);
  EXPECT_NE(message([&] { (void)Add()({a, c}); }).find("(None, 4)"), std::string::npos);
  EXPECT_NE(message([&] { (void)Dense(2)({a, b}); }).find("takes one input"), std::string::npos);
  EXPECT_NE(message([&] { (void)Dot(1)({a, c}); }).find("differ"), std::string::npos);
}

}  // namespace
}  // namespace strata
