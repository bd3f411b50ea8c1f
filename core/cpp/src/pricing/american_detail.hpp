#pragma once
// Internal helpers shared by the American pricing sources (not a public header).
#include <cmath>
#include <cstdint>
#include <vector>

#include "tradecore/math/normal.hpp"
#include "tradecore/pricing/american.hpp"
#include "tradecore/pricing/black_kernels.hpp"

namespace tradecore::pricing::detail {

inline constexpr double kInvSqrt2 = 0.70710678118654752440;
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;
inline constexpr double kPi = 3.14159265358979323846;

// Black-Scholes-Merton European price; w = +1 call, -1 put; T > 0. The European kernel's
// normalised form (black_kernels.hpp): no cancellation out of the money.
inline double bsm_price(double S, double K, double T, double r, double q, double v,
                        double w) noexcept {
  const double x = pricing::detail::log_moneyness(S, K) + (r - q) * T;
  return std::sqrt(S * K) * std::exp(-0.5 * (q + r) * T) *
         normalised_black(w * x, v * std::sqrt(T));
}

// Where early exercise of a put with rate r and yield q can be optimal (a call: swap r and q).
enum class Regime { European, SingleBoundary, DoubleBoundary };
inline Regime put_regime(double r, double q) noexcept {
  if (r > 0.0) return Regime::SingleBoundary;
  return q < r ? Regime::DoubleBoundary : Regime::European;
}

// n-point Gauss-Legendre nodes and weights on [-1, 1] (Newton on the Legendre recurrence).
void gauss_legendre(int n, std::vector<double>& x, std::vector<double>& w);

// Approximations on valid input with T > 0 in the single-boundary regime.
double baw_single(const AmericanOption& o);
double bjs_single(const AmericanOption& o);

// Price and spot Greeks of a tree (theta from the Black-Scholes PDE).
struct TreeResult {
  double price, delta, gamma, theta;
};
TreeResult crr_tree(const AmericanOption& o, int steps, std::vector<double>& work);
TreeResult lr_tree(const AmericanOption& o, int steps, std::vector<double>& work);

// Precomputed tables of an ALO scheme (built once per batch, read-only afterwards).
struct AloTables {
  int n = 0, l = 0, m = 0, p = 0;
  AloEquation equation = AloEquation::FpA;
  std::vector<double> node_xi;  // Chebyshev-Gauss-Lobatto nodes in [-1, 1], n + 1
  std::vector<double> cheb;     // (n + 1) x (n + 1): coefficient k = sum_i cheb[k*(n+1)+i] H_i
  // Quadrature rules on [0, 1] as point, 1 - point and weight: boundary integrals (l points)
  // and the premium integral (p points).
  std::vector<double> fl, cl, wl;
  std::vector<double> fp, cp, wp;
  // Derived per point: (1 - f)(1 + f) and its square root (boundary rule), sqrt((1 - f)(1 + f))
  // (premium rule): u / tau and sqrt(u / tau) at z = sqrt(tau - u) = sqrt(tau) f.
  std::vector<double> ul, sl, sp;
  // The linear maps from the node values H_0..H_n to the interpolant at the points: at sqrt(u) of
  // node i's boundary-rule point j (row (i - 1) l + j of n l; xi = (1 + xi_i) sqrt(u / tau) - 1
  // does not depend on T) and at the premium rule's points (p rows; xi = 2 sqrt(u / T) - 1).
  // Column-major: entry (point, node m) at m * rows + point.
  std::vector<double> interp_l, interp_p;
};
AloTables make_alo_tables(const AmericanSettings& s);
void quadrature_rule(AloRule rule, int n, std::vector<double>& frac, std::vector<double>& comp,
                     std::vector<double>& w);

inline constexpr int kAloMaxNodes = 64;

// The exercise boundary of a unit-strike put (rate r > 0, yield q, vol v, expiry T > 0) as a
// Chebyshev interpolant of H(sqrt(tau)) = ln(B(tau) / X)^2, X = B(0+) = min(1, r / q).
struct AloBoundary {
  double r, q, v, T, sqrtT, log_x;
  int n;
  double h[kAloMaxNodes + 1];     // H at the nodes
  double coef[kAloMaxNodes + 1];  // its Chebyshev coefficients
  // ln B(tau) at sqrt(tau) = z in [0, sqrt(T)].
  [[nodiscard]] double log_b(double z) const noexcept;
};

// Sensitivities of the boundary along up to kAloMaxDirs directions in the put-form parameters
// (sigma, r, q): d ln X and the derivatives of H at the nodes, carried through the
// QD+ start (implicit function theorem on its equation) and every fixed-point iteration
// (forward-mode differentiation of the discrete scheme, so they are the exact derivatives of the
// boundary alo_solve computes).
inline constexpr int kAloMaxDirs = 2;
struct AloDirection {
  double dv = 0.0, dr = 0.0, dq = 0.0;
};
struct AloTangent {
  int dirs = 0;
  AloDirection dir[kAloMaxDirs];
  double log_x[kAloMaxDirs];
  double h[kAloMaxDirs][kAloMaxNodes + 1];
};

// Solves the boundary; with tan (tan->dirs > 0) also its sensitivities along tan->dir.
void alo_solve(const AloTables& t, double r, double q, double v, double T, AloBoundary& b,
               AloTangent* tan = nullptr);
// Unit-strike put value at spot x with the boundary b (the exercise value where x <= B(T)).
double alo_unit_put(const AloTables& t, const AloBoundary& b, double x) noexcept;

// The early-exercise premium of the unit-strike put at spot x and its derivatives: in x at the
// fixed boundary (which does not depend on the spot), and along each direction of tan (through
// the parameters and the boundary's sensitivities). exercise: x is at or below B(T) (the put is
// worth 1 - x there; the other fields are then unset). euro: the European unit put, as
// alo_unit_put adds it (value = max(euro + premium, 1 - x)).
struct AloPremium {
  bool exercise = false;
  double euro = 0.0, value = 0.0, dx = 0.0, dxx = 0.0;
  double dir[kAloMaxDirs] = {};
};
AloPremium alo_unit_premium(const AloTables& t, const AloBoundary& b, const AloTangent& tan,
                            double x) noexcept;

}  // namespace tradecore::pricing::detail
