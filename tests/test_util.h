// Helpers shared by the tests: random data, device round trips, comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace strata::test {

inline std::vector<float> random_vector(std::size_t n, float lo, float hi, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Values in [lo, hi] with magnitude at least `gap`, away from the kinks of relu-like functions.
inline std::vector<float> random_away_from_zero(std::size_t n, float gap, float hi, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(gap, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

// The message of the exception f() throws, or "no error".
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// Expects f() to throw an exception whose message contains `part`; shows the message otherwise.
template <class F>
void expect_error_containing(F&& f, const std::string& part) {
  const std::string message = error_message(f);
  EXPECT_NE(message.find(part), std::string::npos) << "'" << message << "' does not contain '" << part << "'";
}

// A tensor in a backend's memory, filled from and read back to the host.
struct DeviceTensor {
  DeviceBuffer buffer;
  TensorView view;

  DeviceTensor(Backend& b, Shape shape, DType dtype = DType::float32)
      : buffer(b, std::size_t(std::max<std::int64_t>(shape.numel(), 1)) * dtype_size(dtype)),
        view{buffer.data(), dtype, shape} {
    b.fill(view, 0.f);
  }
  template <class T>
  DeviceTensor(Backend& b, Shape shape, const std::vector<T>& host, DType dtype) : DeviceTensor(b, shape, dtype) {
    b.copy_to_device(buffer.data(), host.data(), host.size() * sizeof(T));
  }
  DeviceTensor(Backend& b, Shape shape, const std::vector<float>& host) : DeviceTensor(b, shape, host, DType::float32) {}

  template <class T = float>
  std::vector<T> read() const {
    std::vector<T> out(std::size_t(view.numel()));
    buffer.backend()->copy_to_host(out.data(), buffer.data(), out.size() * sizeof(T));
    return out;
  }
};

// Asserts |actual - expected| <= atol + rtol * |expected| element-wise, reporting the first failure.
inline void expect_close(const std::vector<float>& actual, const std::vector<double>& expected, double atol,
                         double rtol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double tol = atol + rtol * std::fabs(expected[i]);
    if (!(std::fabs(double(actual[i]) - expected[i]) <= tol) &&
        !(std::isnan(expected[i]) && std::isnan(actual[i])) && !(std::isinf(expected[i]) && double(actual[i]) == expected[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << actual[i] << ", expected " << expected[i]
                    << " (tolerance " << tol << ")";
      return;
    }
  }
}

inline std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(std::size_t(s.rank()));
  std::int64_t m = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[std::size_t(i)] = m;
    m *= s[i];
  }
  return st;
}

// Multi-index of flat position i in shape s.
inline std::vector<std::int64_t> unravel(std::int64_t i, const Shape& s) {
  std::vector<std::int64_t> idx(std::size_t(s.rank()));
  for (int d = s.rank() - 1; d >= 0; --d) {
    idx[std::size_t(d)] = i % s[d];
    i /= s[d];
  }
  return idx;
}

}  // namespace strata::test
