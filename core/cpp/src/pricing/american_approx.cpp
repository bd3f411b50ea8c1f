// Closed-form approximations of American options: Barone-Adesi & Whaley (1987) and
// Bjerksund & Stensland (2002), plus the bivariate normal distribution the latter needs.
// Written from the published formulas (cost of carry b = r - q).
#include <algorithm>
#include <cmath>

#include "american_detail.hpp"

namespace tradecore::pricing {

using detail::kPi;
using math::norm_cdf;
using math::norm_pdf;

// Genz (2004) "Numerical computation of rectangular bivariate and trivariate normal and t
// probabilities", algorithm for P(X > h, Y > k) (Drezner-Wesolowsky with Gauss-Legendre rules).
double bivariate_normal_cdf(double a, double b, double rho) noexcept {
  static constexpr double kW[3][10] = {
      {0.1713244923791705, 0.3607615730481384, 0.4679139345726904},
      {0.04717533638651177, 0.1069393259953183, 0.1600783285433464, 0.2031674267230659,
       0.2334925365383547, 0.2491470458134029},
      {0.01761400713915212, 0.04060142980038694, 0.06267204833410906, 0.08327674157670475,
       0.1019301198172404, 0.1181945319615184, 0.1316886384491766, 0.1420961093183821,
       0.1491729864726037, 0.1527533871307259}};
  static constexpr double kX[3][10] = {
      {-0.9324695142031522, -0.6612093864662647, -0.2386191860831970},
      {-0.9815606342467191, -0.9041172563704750, -0.7699026741943050, -0.5873179542866171,
       -0.3678314989981802, -0.1252334085114692},
      {-0.9931285991850949, -0.9639719272779138, -0.9122344282513259, -0.8391169718222188,
       -0.7463319064601508, -0.6360536807265150, -0.5108670019508271, -0.3737060887154196,
       -0.2277858511416451, -0.07652652113349733}};
  const double ar = std::abs(rho);
  int ng, lg;
  if (ar < 0.3) {
    ng = 0;
    lg = 3;
  } else if (ar < 0.75) {
    ng = 1;
    lg = 6;
  } else {
    ng = 2;
    lg = 10;
  }
  double h = -a, k = -b, hk = h * k, bvn = 0.0;
  if (ar < 0.925) {
    const double hs = 0.5 * (h * h + k * k), asr = std::asin(rho);
    for (int i = 0; i < lg; ++i) {
      double sn = std::sin(asr * (kX[ng][i] + 1.0) * 0.5);
      bvn += kW[ng][i] * std::exp((sn * hk - hs) / (1.0 - sn * sn));
      sn = std::sin(asr * (-kX[ng][i] + 1.0) * 0.5);
      bvn += kW[ng][i] * std::exp((sn * hk - hs) / (1.0 - sn * sn));
    }
    return bvn * asr / (4.0 * kPi) + norm_cdf(-h) * norm_cdf(-k);
  }
  if (rho < 0.0) {
    k = -k;
    hk = -hk;
  }
  if (ar < 1.0) {
    const double as = (1.0 - rho) * (1.0 + rho);
    double aa = std::sqrt(as);
    const double bs = (h - k) * (h - k);
    const double c = (4.0 - hk) / 8.0, d = (12.0 - hk) / 16.0;
    bvn = aa * std::exp(-(bs / as + hk) * 0.5) *
          (1.0 - c * (bs - as) * (1.0 - d * bs / 5.0) / 3.0 + c * d * as * as / 5.0);
    if (hk > -160.0) {
      const double bb = std::sqrt(bs);
      bvn -= std::exp(-hk * 0.5) * std::sqrt(2.0 * kPi) * norm_cdf(-bb / aa) * bb *
             (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0);
    }
    aa *= 0.5;
    for (int i = 0; i < lg; ++i) {
      for (int sgn = -1; sgn <= 1; sgn += 2) {
        double xs = aa * (sgn * kX[ng][i] + 1.0);
        xs *= xs;
        const double rs = std::sqrt(1.0 - xs);
        bvn += aa * kW[ng][i] *
               (std::exp(-bs / (2.0 * xs) - hk / (1.0 + rs)) / rs -
                std::exp(-(bs / xs + hk) * 0.5) * (1.0 + c * xs * (1.0 + d * xs)));
      }
    }
    bvn = -bvn / (2.0 * kPi);
  }
  if (rho > 0.0) return bvn + norm_cdf(-std::max(h, k));
  bvn = -bvn;
  if (k > h) bvn += norm_cdf(k) - norm_cdf(h);
  return bvn;
}

namespace {

// 2r / (sigma^2 (1 - e^{-rT})), continuous at r = 0.
double baw_m_over_k(double r, double v2, double T) {
  const double den = -std::expm1(-r * T);
  return std::abs(r * T) < 1e-12 ? 2.0 / (v2 * T) : 2.0 * r / (v2 * den);
}

// BAW American put (r > 0 guaranteed by the caller's regime check).
double baw_put(double S, double K, double T, double r, double q, double v) {
  const double b = r - q, v2 = v * v, sT = v * std::sqrt(T);
  const double nn = 2.0 * b / v2, m = 2.0 * r / v2;
  const double mk = baw_m_over_k(r, v2, T);
  const double q1u = 0.5 * (-(nn - 1.0) - std::sqrt((nn - 1.0) * (nn - 1.0) + 4.0 * m));
  const double su = K / (1.0 - 1.0 / q1u);
  const double h1 = (b * T - 2.0 * sT) * K / (K - su);
  double si = su + (K - su) * std::exp(h1);
  const double q1 = 0.5 * (-(nn - 1.0) - std::sqrt((nn - 1.0) * (nn - 1.0) + 4.0 * mk));
  const double carry = std::exp((b - r) * T);
  auto d1_of = [&](double s) { return (std::log(s / K) + (b + 0.5 * v2) * T) / sT; };
  for (int it = 0; it < 200; ++it) {
    const double d1 = d1_of(si);
    const double lhs = K - si;
    const double rhs =
        detail::bsm_price(si, K, T, r, q, v, -1.0) - (1.0 - carry * norm_cdf(-d1)) * si / q1;
    if (std::abs(lhs - rhs) / K < 1e-10) break;
    const double bi =
        -carry * norm_cdf(-d1) * (1.0 - 1.0 / q1) - (1.0 + carry * norm_pdf(-d1) / sT) / q1;
    si = (K - rhs + bi * si) / (1.0 + bi);
  }
  if (S <= si) return K - S;
  const double a1 = -(si / q1) * (1.0 - carry * norm_cdf(-d1_of(si)));
  return detail::bsm_price(S, K, T, r, q, v, -1.0) + a1 * std::pow(S / si, q1);
}

// BAW American call with q > 0 (the caller's regime check).
double baw_call(double S, double K, double T, double r, double q, double v) {
  const double b = r - q, v2 = v * v, sT = v * std::sqrt(T);
  const double nn = 2.0 * b / v2;
  const double mk = baw_m_over_k(r, v2, T);
  // Seed from the perpetual boundary (with the T-dependent m/K where 4m would be negative).
  const double m = 2.0 * r / v2;
  const double disc_u = (nn - 1.0) * (nn - 1.0) + 4.0 * m;
  const double q2u =
      0.5 * (-(nn - 1.0) + std::sqrt(disc_u > 0.0 ? disc_u : (nn - 1.0) * (nn - 1.0) + 4.0 * mk));
  const double su = K / (1.0 - 1.0 / q2u);
  const double h2 = -(b * T + 2.0 * sT) * K / (su - K);
  double si = K + (su - K) * (1.0 - std::exp(h2));
  const double q2 = 0.5 * (-(nn - 1.0) + std::sqrt((nn - 1.0) * (nn - 1.0) + 4.0 * mk));
  const double carry = std::exp((b - r) * T);
  auto d1_of = [&](double s) { return (std::log(s / K) + (b + 0.5 * v2) * T) / sT; };
  for (int it = 0; it < 200; ++it) {
    const double d1 = d1_of(si);
    const double lhs = si - K;
    const double rhs =
        detail::bsm_price(si, K, T, r, q, v, 1.0) + (1.0 - carry * norm_cdf(d1)) * si / q2;
    if (std::abs(lhs - rhs) / K < 1e-10) break;
    const double bi =
        carry * norm_cdf(d1) * (1.0 - 1.0 / q2) + (1.0 - carry * norm_pdf(d1) / sT) / q2;
    si = (K + rhs - bi * si) / (1.0 - bi);
  }
  if (S >= si) return S - K;
  const double a2 = (si / q2) * (1.0 - carry * norm_cdf(d1_of(si)));
  return detail::bsm_price(S, K, T, r, q, v, 1.0) + a2 * std::pow(S / si, q2);
}

// Bjerksund-Stensland (2002) phi and psi functions (cost of carry b).
double bs_phi(double S, double T, double gamma, double H, double I, double r, double b, double v) {
  const double v2 = v * v, sT = v * std::sqrt(T);
  const double lambda = (-r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2) * T;
  const double d = -(std::log(S / H) + (b + (gamma - 0.5) * v2) * T) / sT;
  const double kappa = 2.0 * b / v2 + (2.0 * gamma - 1.0);
  return std::exp(lambda) * std::pow(S, gamma) *
         (norm_cdf(d) - std::pow(I / S, kappa) * norm_cdf(d - 2.0 * std::log(I / S) / sT));
}

double bs_psi(double S, double T, double gamma, double H, double I2, double I1, double t1, double r,
              double b, double v) {
  const double v2 = v * v;
  const double st1 = v * std::sqrt(t1), sT = v * std::sqrt(T);
  const double drift = b + (gamma - 0.5) * v2;
  const double e1 = (std::log(S / I1) + drift * t1) / st1;
  const double e2 = (std::log(I2 * I2 / (S * I1)) + drift * t1) / st1;
  const double e3 = (std::log(S / I1) - drift * t1) / st1;
  const double e4 = (std::log(I2 * I2 / (S * I1)) - drift * t1) / st1;
  const double f1 = (std::log(S / H) + drift * T) / sT;
  const double f2 = (std::log(I2 * I2 / (S * H)) + drift * T) / sT;
  const double f3 = (std::log(I1 * I1 / (S * H)) + drift * T) / sT;
  const double f4 = (std::log(S * I1 * I1 / (H * I2 * I2)) + drift * T) / sT;
  const double rho = std::sqrt(t1 / T);
  const double lambda = -r + gamma * b + 0.5 * gamma * (gamma - 1.0) * v2;
  const double kappa = 2.0 * b / v2 + (2.0 * gamma - 1.0);
  return std::exp(lambda * T) * std::pow(S, gamma) *
         (bivariate_normal_cdf(-e1, -f1, rho) -
          std::pow(I2 / S, kappa) * bivariate_normal_cdf(-e2, -f2, rho) -
          std::pow(I1 / S, kappa) * bivariate_normal_cdf(-e3, -f3, -rho) +
          std::pow(I1 / I2, kappa) * bivariate_normal_cdf(-e4, -f4, -rho));
}

// Bjerksund-Stensland (2002) American call with q > 0 (the caller's regime check).
double bjs_call(double S, double K, double T, double r, double q, double v) {
  const double b = r - q, v2 = v * v;
  const double t1 = 0.5 * (std::sqrt(5.0) - 1.0) * T;
  const double beta = (0.5 - b / v2) + std::sqrt((b / v2 - 0.5) * (b / v2 - 0.5) + 2.0 * r / v2);
  const double b_inf = beta / (beta - 1.0) * K;
  const double b0 = std::max(K, r / (r - b) * K);
  const double h1 = -(b * t1 + 2.0 * v * std::sqrt(t1)) * K * K / ((b_inf - b0) * b0);
  const double h2 = -(b * T + 2.0 * v * std::sqrt(T)) * K * K / ((b_inf - b0) * b0);
  const double i1 = b0 + (b_inf - b0) * (1.0 - std::exp(h1));
  const double i2 = b0 + (b_inf - b0) * (1.0 - std::exp(h2));
  if (S >= i2) return S - K;
  const double a1 = (i1 - K) * std::pow(i1, -beta);
  const double a2 = (i2 - K) * std::pow(i2, -beta);
  const double value =
      a2 * std::pow(S, beta) - a2 * bs_phi(S, t1, beta, i2, i2, r, b, v) +
      bs_phi(S, t1, 1.0, i2, i2, r, b, v) - bs_phi(S, t1, 1.0, i1, i2, r, b, v) -
      K * bs_phi(S, t1, 0.0, i2, i2, r, b, v) + K * bs_phi(S, t1, 0.0, i1, i2, r, b, v) +
      a1 * bs_phi(S, t1, beta, i1, i2, r, b, v) - a1 * bs_psi(S, T, beta, i1, i2, i1, t1, r, b, v) +
      bs_psi(S, T, 1.0, i1, i2, i1, t1, r, b, v) - bs_psi(S, T, 1.0, K, i2, i1, t1, r, b, v) -
      K * bs_psi(S, T, 0.0, i1, i2, i1, t1, r, b, v) +
      K * bs_psi(S, T, 0.0, K, i2, i1, t1, r, b, v);
  return std::max(value, S - K);
}

}  // namespace

namespace detail {

// Entry points on valid input with T > 0 in the single-boundary regime.
double baw_single(const AmericanOption& o) {
  if (o.type == kCall) return baw_call(o.spot, o.strike, o.expiry, o.rate, o.dividend, o.vol);
  return baw_put(o.spot, o.strike, o.expiry, o.rate, o.dividend, o.vol);
}

double bjs_single(const AmericanOption& o) {
  if (o.type == kCall) return bjs_call(o.spot, o.strike, o.expiry, o.rate, o.dividend, o.vol);
  // P(S, K, r, q) = C(K, S, q, r).
  return bjs_call(o.strike, o.spot, o.expiry, o.dividend, o.rate, o.vol);
}

}  // namespace detail

}  // namespace tradecore::pricing
