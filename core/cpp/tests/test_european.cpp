// European pricing edge cases: put-call parity, expiry 0, Black-76, broadcasting by stride 0,
// the validation messages, and phi refused for Black-76.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "tradecore/pricing/european.hpp"

using namespace tradecore;
using namespace tradecore::pricing;

namespace {

struct Rows {
  std::vector<double> spot, strike, expiry, rate, dividend, vol;
  std::vector<std::int8_t> type;
  EuropeanBatch batch(Model model = Model::Bsm) const {
    EuropeanBatch b;
    b.spot = {spot.data(), 1};
    b.strike = {strike.data(), 1};
    b.expiry = {expiry.data(), 1};
    b.rate = {rate.data(), 1};
    b.dividend = {dividend.data(), 1};
    b.vol = {vol.data(), 1};
    b.type = {type.data(), 1};
    b.n = spot.size();
    b.model = model;
    return b;
  }
};

Rows call_and_put(double s, double k, double t, double r, double q, double v) {
  return {{s, s}, {k, k}, {t, t}, {r, r}, {q, q}, {v, v}, {kCall, kPut}};
}

std::string message_of(const EuropeanBatch& b) {
  try {
    validate(b);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(known_value_and_put_call_parity) {
  // Hull's example: S = 42, K = 40, T = 0.5, r = 0.1, sigma = 0.2: call 4.7594, put 0.8086.
  const Rows rows = call_and_put(42, 40, 0.5, 0.1, 0.0, 0.2);
  double price[2], delta[2];
  EuropeanOut out;
  out.price = price;
  out.delta = delta;
  european(rows.batch(), out);
  CHECK_NEAR(price[0], 4.759422, 1e-6);
  CHECK_NEAR(price[1], 0.808600, 1e-6);
  CHECK_NEAR(price[0] - price[1], 42 - 40 * std::exp(-0.1 * 0.5), 1e-12);
  CHECK_NEAR(delta[0] - delta[1], 1.0, 1e-12);
  // With a dividend yield: C - P = S e^{-qT} - K e^{-rT}.
  const Rows q = call_and_put(100, 110, 2.0, 0.03, 0.02, 0.25);
  european(q.batch(), out);
  CHECK_NEAR(price[0] - price[1], 100 * std::exp(-0.04) - 110 * std::exp(-0.06), 1e-12);
}

TEST(expiry_zero_is_intrinsic) {
  Rows rows{{90, 100, 110, 90, 100, 110},
            {100, 100, 100, 100, 100, 100},
            {0, 0, 0, 0, 0, 0},
            {0.05, 0.05, 0.05, 0.05, 0.05, 0.05},
            {0, 0, 0, 0, 0, 0},
            {0.2, 0.2, 0.2, 0.2, 0.2, 0.2},
            {kCall, kCall, kCall, kPut, kPut, kPut}};
  double price[6], delta[6], gamma[6];
  EuropeanOut out;
  out.price = price;
  out.delta = delta;
  out.gamma = gamma;
  european(rows.batch(), out);
  const double want_price[] = {0, 0, 10, 10, 0, 0};
  const double want_delta[] = {0, 0.5, 1, -1, -0.5, 0};
  for (int i = 0; i < 6; ++i) {
    CHECK(price[i] == want_price[i]);
    CHECK(delta[i] == want_delta[i]);
    CHECK(gamma[i] == 0.0);
  }
}

TEST(black76_discounts_the_forward_and_has_no_phi) {
  // Black-76: C = e^{-rT} (F N(d1) - K N(d2)); parity C - P = e^{-rT} (F - K); rho = -T V.
  const Rows rows = call_and_put(105, 100, 0.75, 0.04, 0.0, 0.3);
  double price[2], rho[2];
  EuropeanOut out;
  out.price = price;
  out.rho = rho;
  european(rows.batch(Model::Black76), out);
  CHECK_NEAR(price[0] - price[1], std::exp(-0.04 * 0.75) * 5.0, 1e-12);
  CHECK_NEAR(rho[0], -0.75 * price[0], 1e-12);
  double phi[2];
  out.phi = phi;
  CHECK_THROWS(std::invalid_argument, european(rows.batch(Model::Black76), out));
}

TEST(stride_zero_broadcasts_a_scalar) {
  // One spot, rate, dividend, vol and type for many strikes (stride 0), against row by row.
  const std::size_t n = 3000;  // several chunks of the kernel
  std::vector<double> strikes(n), expiry(n, 1.0);
  for (std::size_t i = 0; i < n; ++i) strikes[i] = 50.0 + 0.05 * double(i);
  const double s = 100, r = 0.01, q = 0.0, v = 0.2;
  const std::int8_t put = kPut;
  EuropeanBatch b;
  b.spot = {&s, 0};
  b.strike = {strikes.data(), 1};
  b.expiry = {expiry.data(), 1};
  b.rate = {&r, 0};
  b.dividend = {&q, 0};
  b.vol = {&v, 0};
  b.type = {&put, 0};
  b.n = n;
  std::vector<double> price(n);
  EuropeanOut out;
  out.price = price.data();
  european(b, out);
  for (std::size_t i = 0; i < n; i += 499) {
    const Rows one{{s}, {strikes[i]}, {1.0}, {r}, {q}, {v}, {kPut}};
    double p1 = 0;
    EuropeanOut o1;
    o1.price = &p1;
    european(one.batch(), o1);
    CHECK(p1 == price[i]);
  }
}

TEST(invalid_rows_are_named) {
  Rows rows = call_and_put(100, 100, 1, 0.01, 0, 0.2);
  CHECK(message_of(rows.batch()).empty());
  rows.vol[1] = -0.2;
  const std::string m = message_of(rows.batch());
  CHECK(m.find("volatility[1]") != std::string::npos);
  Invalid bad{};
  CHECK(!check(rows.batch(), bad) && bad.field == EuropeanField::Vol && bad.row == 1);
  rows.vol[1] = 0.2;
  rows.expiry[0] = std::nan("");
  CHECK(!check(rows.batch(), bad) && bad.field == EuropeanField::Expiry && bad.row == 0);
  rows.expiry[0] = 1;
  rows.type[1] = 0;
  CHECK(!check(rows.batch(), bad) && bad.field == EuropeanField::Type && bad.row == 1);
  double price[2];
  EuropeanOut out;
  out.price = price;
  CHECK_THROWS(std::invalid_argument, european(rows.batch(), out));
}

TEST_MAIN()
