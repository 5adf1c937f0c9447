// ops::einsum against a sum over every assignment of the subscripts, written in double from numpy's
// definition; ellipses against the same equation with the dimensions spelt out. Gradients are checked in
// test_gradients; EinsumDense against Keras in test_einsum_dense.
#include <gtest/gtest.h>

#include <map>

#include "graph/einsum.h"
#include "graph/program.h"
#include "test_util.h"

namespace strata::test {
namespace {

// numpy.einsum for an explicit equation of letters only: every output element sums a[..] * b[..] over all
// values of the subscripts that are not in the output.
std::vector<double> reference(const std::string& equation, const Shape& as, const std::vector<float>& a, const Shape& bs,
                              const std::vector<float>& b) {
  const auto comma = equation.find(','), arrow = equation.find("->");
  const std::string sa = equation.substr(0, comma), sb = equation.substr(comma + 1, arrow - comma - 1), so = equation.substr(arrow + 2);
  std::map<char, std::int64_t> size;
  for (std::size_t i = 0; i < sa.size(); ++i) size[sa[i]] = as[int(i)];
  for (std::size_t i = 0; i < sb.size(); ++i) size[sb[i]] = bs[int(i)];
  std::string letters;
  for (const auto& [c, n] : size) letters += c;
  std::int64_t out_size = 1;
  for (char c : so) out_size *= size[c];
  std::vector<double> out(std::size_t(out_size), 0.0);
  std::map<char, std::int64_t> at;
  for (char c : letters) at[c] = 0;
  auto offset = [&](const std::string& s) {
    std::int64_t o = 0;
    for (char c : s) o = o * size[c] + at[c];
    return o;
  };
  while (true) {
    out[std::size_t(offset(so))] += double(a[std::size_t(offset(sa))]) * double(b[std::size_t(offset(sb))]);
    int k = int(letters.size()) - 1;
    while (k >= 0 && ++at[letters[std::size_t(k)]] == size[letters[std::size_t(k)]]) at[letters[std::size_t(k--)]] = 0;
    if (k < 0) break;
  }
  return out;
}

std::vector<float> run_einsum(const std::string& equation, const Shape& as, std::vector<float> a, const Shape& bs, std::vector<float> b,
                              Shape* shape = nullptr) {
  clear_session();
  const Tensor x = ops::placeholder(as, DType::float32, "a"), y = ops::placeholder(bs, DType::float32, "b");
  Program program({x, y}, {ops::einsum(equation, x, y)});
  const std::vector<TensorView> feeds{TensorView{a.data(), DType::float32, as}, TensorView{b.data(), DType::float32, bs}};
  program.run(Mode::inference, feeds);
  if (shape) *shape = program.output_shape(0);
  return program.read_output(0);
}

struct Case {
  std::string equation;  // as given to einsum
  Shape a, b;
  std::string spelt_out;  // the reference's equation: letters only, explicit output
  Shape expected;
};

TEST(Einsum, MatchesTheDefinition) {
  const std::vector<Case> cases{
      {"ab,bc->ac", {3, 4}, {4, 5}, "ab,bc->ac", {3, 5}},
      {"abc,cd->abd", {2, 3, 4}, {4, 5}, "abc,cd->abd", {2, 3, 5}},
      {"abc,cde->abde", {2, 3, 4}, {4, 2, 3}, "abc,cde->abde", {2, 3, 2, 3}},
      {"abcd,cde->abe", {2, 3, 2, 4}, {2, 4, 3}, "abcd,cde->abe", {2, 3, 3}},
      {"bij,bjk->bik", {2, 3, 4}, {2, 4, 5}, "bij,bjk->bik", {2, 3, 5}},
      {"aecd,abcd->acbe", {2, 3, 4, 5}, {2, 3, 4, 5}, "aecd,abcd->acbe", {2, 4, 3, 3}},  // attention scores
      {"ab,bc->ca", {3, 4}, {4, 5}, "ab,bc->ca", {5, 3}},
      {"ab,cd->abcd", {2, 3}, {3, 2}, "ab,cd->abcd", {2, 3, 3, 2}},
      {"ab,ab->", {3, 4}, {3, 4}, "ab,ab->", {}},
      {"abc,cd->ad", {2, 3, 4}, {4, 5}, "abc,cd->ad", {2, 5}},
      {"abc,dc->a", {2, 3, 4}, {5, 4}, "abc,dc->a", {2}},
      {"ij,jk", {3, 4}, {4, 2}, "ij,jk->ik", {3, 2}},
      {"ba,cb", {3, 4}, {2, 3}, "ba,cb->ac", {4, 2}},
      {"...b,bc->...c", {2, 3, 4}, {4, 5}, "xyb,bc->xyc", {2, 3, 5}},
      {"...ab,bc->...ac", {2, 3, 4}, {4, 5}, "xab,bc->xac", {2, 3, 5}},
      {"ab...,bc->ac...", {2, 3, 4}, {3, 5}, "abx,bc->acx", {2, 5, 4}},
      {"...ij,...jk->...ik", {2, 3, 4}, {2, 4, 2}, "xij,xjk->xik", {2, 3, 2}},
      {" ab , bc -> ac ", {3, 4}, {4, 5}, "ab,bc->ac", {3, 5}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.equation);
    const auto a = random_vector(std::size_t(c.a.numel()), -1, 1, 11), b = random_vector(std::size_t(c.b.numel()), -1, 1, 12);
    Shape shape;
    const auto got = run_einsum(c.equation, c.a, a, c.b, b, &shape);
    EXPECT_EQ(shape, c.expected);
    expect_close(got, reference(c.spelt_out, c.a, a, c.b, b), 1e-5, 1e-5, c.equation);
  }
}

TEST(Einsum, UnknownBatchDimension) {
  // The batch size is unknown when traced: it is the one dimension folded as -1.
  clear_session();
  const Tensor x = ops::placeholder({-1, 3, 4}, DType::float32, "x");
  const Tensor k = ops::placeholder({4, 2, 3}, DType::float32, "k");
  const Tensor y = ops::einsum("abc,cde->abde", x, k);
  EXPECT_EQ(y.shape(), Shape({-1, 3, 2, 3}));
  Program program({x, k}, {y});
  auto xv = random_vector(2 * 3 * 4, -1, 1, 13), kv = random_vector(4 * 2 * 3, -1, 1, 14);
  const std::vector<TensorView> feeds{TensorView{xv.data(), DType::float32, {2, 3, 4}}, TensorView{kv.data(), DType::float32, {4, 2, 3}}};
  program.run(Mode::inference, feeds);
  expect_close(program.read_output(0), reference("abc,cde->abde", {2, 3, 4}, xv, {4, 2, 3}, kv), 1e-5, 1e-5, "unknown batch");
}

TEST(Einsum, ErrorsNameTheEquationAndShapes) {
  clear_session();
  const Tensor x = ops::placeholder({2, 3}, DType::float32, "x"), y = ops::placeholder({4, 5}, DType::float32, "y");
  expect_error_containing([&] { ops::einsum("ab,bc->ac", x, y); }, "einsum 'ab,bc->ac' on (2, 3) and (4, 5): subscript 'b' has sizes 3 and 4");
  expect_error_containing([&] { ops::einsum("aa,bc->bc", x, y); }, "diagonal");
  expect_error_containing([&] { ops::einsum("abc,bc->a", x, y); }, "'abc' names 3 dimensions of 2");
  expect_error_containing([&] { ops::einsum("ab,cd->e", x, y); }, "output subscript 'e' is in neither operand");
  expect_error_containing([&] { ops::einsum("ab->ab", x, y); }, "two operands");
  expect_error_containing([&] { ops::einsum("a1,cd->acd", x, y); }, "'1' is not a subscript letter");
}

}  // namespace
}  // namespace strata::test
