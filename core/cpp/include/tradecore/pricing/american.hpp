#pragma once
// American options on a stock with a continuous dividend yield (Black-Scholes-Merton dynamics).
//
// Methods:
//   Alo      Andersen-Lake-Offengenden (2016) fixed-point exercise-boundary method: the boundary
//            of the put is solved at Chebyshev nodes in sqrt(tau) by fixed-point iterations of the
//            smooth-pasting equation (FP-A) or the value-matching equation (FP-B), started from
//            Li's QD+ boundary, with tanh-sinh (or Gauss-Legendre) quadrature; the price is the
//            European price plus the early-exercise premium integral over that boundary.
//   Baw      Barone-Adesi & Whaley (1987) quadratic approximation.
//   Bjs2002  Bjerksund & Stensland (2002) two-step flat-boundary approximation.
//   Crr      Cox-Ross-Rubinstein binomial tree.
//   Lr       Leisen-Reimer binomial tree (Peizer-Pratt inversion, odd number of steps).
//
// Calls are priced through put-call symmetry C(S, K, r, q) = P(K, S, q, r) by Alo, Baw (on the
// put side) and Bjs2002 (on the call side); the trees price both types directly.
//
// Exercise regimes of a put (a call is the put with S<->K, r<->q):
//   r > 0                 one exercise boundary below the strike (every method);
//   r <= 0 and q >= r     early exercise is never optimal: the European price;
//   q < r <= 0            two exercise boundaries ("double-boundary" case). The trees price it;
//                         Alo, Baw and Bjs2002 hand such rows to the Leisen-Reimer tree with
//                         Richardson extrapolation (kDoubleBoundarySteps, reported as engine
//                         kEngineLrRichardson) unless AmericanSettings::double_boundary_tree is
//                         false, when they refuse them (scalar: tradecore::UnsupportedRegime,
//                         batch: NaN and status kUnsupported).
//
// Greeks (same conventions as european.hpp: delta = dV/dS, gamma = d2V/dS2, theta = -dV/dT,
// vega = dV/dsigma, rho = dV/dr, all per 1.00):
//   Alo      one boundary solve and one pass of the premium integral give every Greek: delta,
//            gamma: the European values plus the premium integral's derivatives in S at the fixed
//            boundary (it does not depend on S); vega, rho: the European values plus the premium's
//            derivatives along sigma and r, through the boundary's sensitivities, which the solve
//            carries through the QD+ start (implicit function theorem) and every fixed-point
//            iteration (forward-mode differentiation): the exact derivatives of the engine's
//            price; theta from the Black-Scholes PDE, theta = rV - (r-q) S delta - sigma^2 S^2
//            gamma / 2 (0 where exercise is optimal now).
//   trees    delta, gamma: quadratic through the three nodes of step 2; theta from the PDE.
//   Baw, Bjs2002  delta, gamma: central differences in S (bump 1e-4 * S); theta: central
//            difference in T (bump min(1e-4, T/2)).
//   T == 0 and the no-early-exercise regime: the European values of european.hpp.
//   Baw, Bjs2002, trees  vega and rho: central differences of the same engine, bumps 1e-4 in
//            sigma and in r (the engine's settings are fixed, so the price is a smooth function of
//            them).
#include <cstddef>
#include <cstdint>
#include <span>

#include "tradecore/common.hpp"
#include "tradecore/pricing/european.hpp"

namespace tradecore {

// A model that cannot price the requested regime (e.g. the double-boundary case q < r < 0 of a
// put for the single-boundary methods).
class UnsupportedRegime : public Error {
 public:
  using Error::Error;
};

}  // namespace tradecore

namespace tradecore::pricing {

enum class AmericanMethod : int { Alo = 0, Baw = 1, Bjs2002 = 2, Crr = 3, Lr = 4 };

// Parses "alo", "baw", "bjs2002", "crr", "lr"; throws std::invalid_argument otherwise.
AmericanMethod american_method_from_name(const char* name);
const char* american_method_name(AmericanMethod m) noexcept;

// Which equation the ALO fixed-point iteration uses for the boundary.
enum class AloEquation : int { FpA = 0, FpB = 1 };
// Which quadrature rule the ALO integrals use (both in z = sqrt(time to the boundary point)).
enum class AloRule : int { TanhSinh = 0, GaussLegendre = 1 };

struct AmericanSettings {
  AmericanMethod method = AmericanMethod::Alo;
  // Trees: number of time steps (Lr rounds an even count up to the next odd one).
  int steps = 801;
  // Alo: Chebyshev nodes of the boundary (n), Gauss-Legendre points of the boundary integrals (l),
  // fixed-point iterations (m), Gauss-Legendre points of the premium integral (p).
  int alo_nodes = 8;
  int alo_quadrature = 16;
  int alo_iterations = 6;  // 3 leaves rows with q >> r at ~1e-3; 6 keeps all within 1e-4
  int alo_price_quadrature = 40;
  AloEquation alo_equation = AloEquation::FpA;
  AloRule alo_rule = AloRule::TanhSinh;
  // Alo, Baw, Bjs2002: price double-boundary rows with the Richardson-extrapolated LR tree
  // (true) or refuse them (false).
  bool double_boundary_tree = true;
};

// The LR tree steps of the double-boundary fallback: (N2 P(N2) - N1 P(N1)) / (N2 - N1) removes
// the tree's O(1/N) error (within ~1e-5 of a converged price at K = 100).
inline constexpr int kDoubleBoundarySteps[2] = {801, 1601};

// Which engine priced a row (AmericanOut::engine).
inline constexpr std::uint8_t kEngineEuropean = 0;  // T = 0 or no early exercise: closed form
inline constexpr std::uint8_t kEngineAlo = 1;
inline constexpr std::uint8_t kEngineBaw = 2;
inline constexpr std::uint8_t kEngineBjs2002 = 3;
inline constexpr std::uint8_t kEngineCrr = 4;
inline constexpr std::uint8_t kEngineLr = 5;
inline constexpr std::uint8_t kEngineLrRichardson = 6;  // the double-boundary fallback
inline constexpr std::uint8_t kEngineNone = 255;        // not priced (status != 0)

// Throws std::invalid_argument naming the first setting out of range
// (steps in [1, 100000], alo_nodes in [2, 64], alo_quadrature in [2, 128],
// alo_iterations in [0, 100], alo_price_quadrature in [2, 256]).
void validate(const AmericanSettings& s);

struct AmericanOption {
  double spot = 0.0, strike = 0.0, expiry = 0.0, rate = 0.0, dividend = 0.0, vol = 0.0;
  std::int8_t type = kPut;
};

// Row status of a batch.
inline constexpr std::uint8_t kAmericanOk = 0;
inline constexpr std::uint8_t kAmericanInvalid = 1;      // an input broke the rules of check()
inline constexpr std::uint8_t kAmericanUnsupported = 2;  // the method refuses the regime

// Output columns; a null pointer means "not requested". Contiguous, length n (boundary: n rows of
// boundary_points values, row-major). Rows with a non-zero status get NaN in every column.
struct AmericanOut {
  double* price = nullptr;
  double* delta = nullptr;
  double* gamma = nullptr;
  double* theta = nullptr;
  double* vega = nullptr;
  double* rho = nullptr;
  std::uint8_t* status = nullptr;
  std::uint8_t* engine = nullptr;  // kEngine* of each row
  // Early-exercise boundary (Alo only): boundary_time[i * points + j] = j * T_i / (points - 1)
  // (time to expiry) and boundary[i * points + j] the critical spot there: a put is exercised at
  // or below it, a call at or above it. A put that is never exercised early gets 0, a call +inf.
  double* boundary_time = nullptr;
  double* boundary = nullptr;
  std::size_t boundary_points = 0;
};

// Prices a batch. Never throws per row: invalid rows (rules of check() in european.hpp) and rows
// the method refuses get NaN and a status; returns the number of such rows. Throws
// std::invalid_argument for invalid settings, and when a boundary is requested from a method
// other than Alo. Uses up to `threads` threads (0: the runtime default).
std::size_t american(const EuropeanBatch& in, const AmericanOut& out, const AmericanSettings& s,
                     int threads = 0);

// One option: validates (std::invalid_argument naming the field), throws
// tradecore::UnsupportedRegime where the method refuses the regime.
double american_price(const AmericanOption& o, const AmericanSettings& s = {});

// The ALO early-exercise boundary of one option at the given times to expiry (each in [0, T]):
// critical spot prices, in the conventions of AmericanOut::boundary.
void american_boundary(const AmericanOption& o, const AmericanSettings& s,
                       std::span<const double> tau, std::span<double> out);

// american_price with that method (and its other settings at their defaults).
double alo_price(const AmericanOption& o, const AmericanSettings& s);
double baw_price(const AmericanOption& o);
double bjs2002_price(const AmericanOption& o);
double crr_price(const AmericanOption& o, int steps);
double lr_price(const AmericanOption& o, int steps);

// P(X <= a, Y <= b) for standard normals with correlation rho (Genz 2004 / Drezner-Wesolowsky).
double bivariate_normal_cdf(double a, double b, double rho) noexcept;

}  // namespace tradecore::pricing
