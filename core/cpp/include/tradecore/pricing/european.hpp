#pragma once
// European options: Black-Scholes-Merton with a continuous dividend yield, and Black-76 on a
// forward/futures price.
//
// Conventions: raw partial derivatives, per year and per 1.00 of vol/rate.
//   delta = dV/dS, gamma = d2V/dS2, vega = dV/dsigma, theta = -dV/dT,
//   rho = dV/dr, phi = dV/dq, vanna = d2V/dSdsigma, charm = -d2V/dSdT, vomma = d2V/dsigma2,
//   speed = d3V/dS3, color = -d3V/dS2dT, zomma = d3V/dS2dsigma, ultima = d3V/dsigma3,
//   veta = -d2V/dsigmadT, dual_delta = dV/dK, dual_gamma = d2V/dK2, elasticity = delta S / V.
// Black-76: "spot" is the forward F (held fixed when T or r move), the dividend column is not
// read, rho = dV/dr = -T V and phi is NaN.
// At T == 0 the price is the intrinsic value, delta the exercise indicator (1/2 at the money),
// dual_delta = -delta, elasticity delta S / V (0 when V == 0) and every other Greek 0.
//
// Accuracy: rows whose fast vectorised formulas would lose more than ~12 bits (prices cancelling
// in S e^{-qT} N(d1) - K e^{-rT} N(d2), normal tails beyond |d| = 20) are recomputed without
// cancellation (prices: the normalised Black form from math::erfcx_pair_nonneg in one vector
// pass; tails: every output from the scalar kernels of black_kernels.hpp); the other rows keep
// ~2e-12 relative at worst (typically a few ulps).
#include <cstddef>
#include <cstdint>

#include "tradecore/common.hpp"

namespace tradecore::pricing {

// Option type codes used in every batch API: +1 call, -1 put.
inline constexpr std::int8_t kCall = 1;
inline constexpr std::int8_t kPut = -1;

enum class Model : int { Bsm = 0, Black76 = 1 };

struct EuropeanBatch {
  In<double> spot, strike, expiry, rate, dividend, vol;
  In<std::int8_t> type;
  std::size_t n = 0;
  Model model = Model::Bsm;  // Black76: spot is the forward and dividend is not read
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
  double* vanna = nullptr;
  double* charm = nullptr;
  double* vomma = nullptr;
  double* speed = nullptr;
  double* color = nullptr;
  double* zomma = nullptr;
  double* ultima = nullptr;
  double* veta = nullptr;
  double* dual_delta = nullptr;
  double* dual_gamma = nullptr;
  double* elasticity = nullptr;
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

// The domain of the pricing inputs: inside it every price and Greek is finite (outside it the
// closed forms overflow, e.g. exp(-rT) for |r| T in the thousands, or divide by a vanishing
// sigma sqrt(T)). Bounds are inclusive; NaN fails every test.
// Spot (and Black-76 forward): the higher Greeks grow with powers of 1 / spot. Strike: wider,
// only its ratio to the spot matters, up to exp(-r T) K overflowing.
inline constexpr double kMinSpot = 1e-8;
inline constexpr double kMaxSpot = 1e15;
inline constexpr double kMinStrike = 1e-100;
inline constexpr double kMaxStrike = 1e100;
inline constexpr double kMinExpiry = 1e-12;  // expiry is 0 or in [kMinExpiry, kMaxExpiry]
inline constexpr double kMaxExpiry = 100.0;  // years
inline constexpr double kMaxAbsRate = 2.0;   // |rate|, |dividend| (continuous, per year)
inline constexpr double kMinVol = 1e-8;
inline constexpr double kMaxVol = 100.0;

inline bool spot_ok(double x) noexcept { return x >= kMinSpot && x <= kMaxSpot; }
inline bool strike_ok(double x) noexcept { return x >= kMinStrike && x <= kMaxStrike; }
inline bool expiry_ok(double t) noexcept {
  return t == 0.0 || (t >= kMinExpiry && t <= kMaxExpiry);
}
inline bool rate_ok(double r) noexcept { return r >= -kMaxAbsRate && r <= kMaxAbsRate; }
inline bool vol_ok(double v) noexcept { return v >= kMinVol && v <= kMaxVol; }

// Rules: spot in [kMinSpot, kMaxSpot], strike in [kMinStrike, kMaxStrike], expiry 0 or in
// [kMinExpiry, kMaxExpiry], |rate| and |dividend| <= kMaxAbsRate (dividend not read for Black-76),
// vol in [kMinVol, kMaxVol], type +1 (call) or -1 (put). Returns false and fills `bad` at the first
// violation.
bool check(const EuropeanBatch& in, Invalid& bad) noexcept;

// check() that throws std::invalid_argument("volatility[3] must be finite and in [1e-08, 100] (got
// -0.2)").
void validate(const EuropeanBatch& in);
const char* field_name(EuropeanField f) noexcept;

// Prices the batch under in.model, validating it in the same pass (throws
// std::invalid_argument naming the first invalid row). Uses up to `threads` threads (0: the
// runtime default). Black-76 batches must not request phi (std::invalid_argument).
void european(const EuropeanBatch& in, const EuropeanOut& out, int threads = 0);

// Same computation without validation, for callers that validated already (rows that are
// invalid get unspecified outputs).
void european_unchecked(const EuropeanBatch& in, const EuropeanOut& out, int threads = 0);

}  // namespace tradecore::pricing
