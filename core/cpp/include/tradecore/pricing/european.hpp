#pragma once
// Black-Scholes-Merton European options with a continuous dividend yield.
//
// Conventions: raw partial derivatives, per year and per 1.00 of vol/rate.
//   delta = dV/dS, gamma = d2V/dS2, vega = dV/dsigma, theta = -dV/dT,
//   rho = dV/dr, phi = dV/dq.
// At T == 0 the price is the intrinsic value, delta the exercise indicator (1/2 at the money)
// and every other Greek 0.
#include <cstddef>
#include <cstdint>

#include "tradecore/common.hpp"

namespace tradecore::pricing {

// Option type codes used in every batch API: +1 call, -1 put.
inline constexpr std::int8_t kCall = 1;
inline constexpr std::int8_t kPut = -1;

struct EuropeanBatch {
  In<double> spot, strike, expiry, rate, dividend, vol;
  In<std::int8_t> type;
  std::size_t n = 0;
};

// Output columns; a null pointer means "not requested". All are contiguous, length n.
struct EuropeanOut {
  double* price = nullptr;
  double* delta = nullptr;
  double* gamma = nullptr;
  double* vega = nullptr;
  double* theta = nullptr;
  double* rho = nullptr;
  double* phi = nullptr;
};

// The inputs of a batch, in the order of EuropeanBatch's members.
enum class EuropeanField : int { Spot = 0, Strike, Expiry, Rate, Dividend, Vol, Type };

// The first invalid input of a batch: which field, which row, the offending value and the rule.
struct Invalid {
  EuropeanField field;
  std::size_t row;
  double value;
  const char* rule;  // e.g. "must be finite and > 0"
};

// Rules: spot/strike/vol finite and > 0, expiry finite and >= 0, rate/dividend finite,
// type +1 (call) or -1 (put). Returns false and fills `bad` at the first violation.
bool check(const EuropeanBatch& in, Invalid& bad) noexcept;

// check() that throws std::invalid_argument("volatility[3] must be finite and > 0 (got -0.2)").
void validate(const EuropeanBatch& in);
const char* field_name(EuropeanField f) noexcept;

// Prices the batch (validated first). Uses up to `threads` threads (0: the runtime default).
void bsm_european(const EuropeanBatch& in, const EuropeanOut& out, int threads = 0);

// Same computation without validation, for callers that validated already.
void bsm_european_unchecked(const EuropeanBatch& in, const EuropeanOut& out, int threads = 0);

}  // namespace tradecore::pricing
